//! The one way a command-line choice is parsed: a type lists its values and names
//! ([`Choice`]), and [`choice`] turns that list into a clap parser that shows the possible values
//! in `--help` and in its error. Science and report types stay free of clap.

use std::ffi::OsStr;
use std::marker::PhantomData;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};

use mechlab::model::{MixerKind, Site};
use mechlab::report::export::tables::FileFormat;
use mechlab::report::plot::{ImageFormat, Kind as PlotKind};
use mechlab::report::table::Format as TableFormat;
use mechlab::store::Table;
use mechlab::task::Split;

/// A closed set of values named on the command line.
pub trait Choice: Copy + Send + Sync + 'static {
    /// Every value, in the order `--help` lists them.
    fn all() -> &'static [Self];
    fn name(self) -> &'static str;
}

macro_rules! choices {
    ($($ty:ty => $all:expr),* $(,)?) => {$(
        impl Choice for $ty {
            fn all() -> &'static [Self] {
                &$all
            }
            fn name(self) -> &'static str {
                <$ty>::name(self)
            }
        }
    )*};
}

choices! {
    MixerKind => MixerKind::ALL,
    Site => Site::ALL,
    Split => Split::ALL,
    PlotKind => PlotKind::ALL,
    ImageFormat => ImageFormat::ALL,
    TableFormat => TableFormat::ALL,
    Table => Table::ALL,
}

impl Choice for FileFormat {
    fn all() -> &'static [Self] {
        &FileFormat::ALL
    }
    fn name(self) -> &'static str {
        self.extension()
    }
}

/// The clap parser of a [`Choice`].
pub fn choice<T: Choice>() -> ChoiceParser<T> {
    ChoiceParser(PhantomData)
}

#[derive(Clone)]
pub struct ChoiceParser<T>(PhantomData<T>);

impl<T: Choice> TypedValueParser for ChoiceParser<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        // clap's own parser checks the name, so a typo gets clap's message with the possible values.
        let names = T::all().iter().map(|c| c.name());
        let name = PossibleValuesParser::new(names).parse_ref(cmd, arg, value)?;
        Ok(*T::all()
            .iter()
            .find(|c| c.name() == name)
            .expect("PossibleValuesParser accepted only listed names"))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            T::all().iter().map(|c| PossibleValue::new(c.name())),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names<T: Choice>() -> Vec<&'static str> {
        T::all().iter().map(|c| c.name()).collect()
    }

    #[test]
    fn names_are_unique_and_snake_case() {
        for list in [
            names::<MixerKind>(),
            names::<Site>(),
            names::<Split>(),
            names::<PlotKind>(),
            names::<ImageFormat>(),
            names::<TableFormat>(),
            names::<Table>(),
            names::<FileFormat>(),
        ] {
            let mut sorted = list.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), list.len(), "{list:?}");
            for n in list {
                assert!(
                    n.chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()),
                    "{n}"
                );
            }
        }
    }

    #[test]
    fn parses_a_name_and_refuses_a_typo_listing_the_values() {
        let cmd = clap::Command::new("t");
        let p = choice::<PlotKind>();
        assert_eq!(
            p.parse_ref(&cmd, None, OsStr::new("accuracy_lr")).unwrap(),
            PlotKind::AccuracyLr
        );
        let e = p.parse_ref(&cmd, None, OsStr::new("acuracy")).unwrap_err();
        assert!(e.to_string().contains("attrib_layers"), "{e}");
    }
}
