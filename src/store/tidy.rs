//! Tidy frames from the rows the science modules return, one column per field: the row struct
//! is the schema. Column names are the fields' names in declaration order; integers become
//! `i64`, floats `f64`, strings and unit enum variants (sites, roles, modes, in their serde
//! names) `str`.

use polars::prelude::*;
use serde::ser::{self, Impossible, Serialize};

/// The values of one column.
enum Values {
    Int(Vec<i64>),
    Float(Vec<f64>),
    Text(Vec<String>),
}

/// One field's value.
enum Scalar {
    Int(i64),
    Float(f64),
    Text(String),
}

/// What a field is: an error names the field and what it held.
#[derive(Debug)]
struct NotTidy(String);

impl std::fmt::Display for NotTidy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotTidy {}

impl ser::Error for NotTidy {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        NotTidy(msg.to_string())
    }
}

/// The columns being filled, one row at a time.
#[derive(Default)]
struct Columns {
    names: Vec<&'static str>,
    values: Vec<Values>,
    /// The field of the row being read.
    field: usize,
}

impl Columns {
    fn push(&mut self, value: Scalar) -> Result<(), NotTidy> {
        let i = self.field;
        self.field += 1;
        if i == self.values.len() {
            self.values.push(match value {
                Scalar::Int(_) => Values::Int(Vec::new()),
                Scalar::Float(_) => Values::Float(Vec::new()),
                Scalar::Text(_) => Values::Text(Vec::new()),
            });
        }
        match (&mut self.values[i], value) {
            (Values::Int(c), Scalar::Int(v)) => c.push(v),
            (Values::Float(c), Scalar::Float(v)) => c.push(v),
            (Values::Text(c), Scalar::Text(v)) => c.push(v),
            _ => {
                return Err(NotTidy(format!(
                    "field {} changes type between rows",
                    self.names[i]
                )));
            }
        }
        Ok(())
    }
}

/// `rows` as a frame, one column per field; `prototype` gives the schema of an empty frame
/// (its values are not used).
pub fn tidy<T: Serialize>(rows: &[T], prototype: &T) -> DataFrame {
    let mut columns = Columns::default();
    let n = rows.len();
    for row in rows.iter().chain((n == 0).then_some(prototype)) {
        columns.field = 0;
        row.serialize(RowSink(&mut columns))
            .expect("row types are structs of numbers, strings and unit enums");
    }
    let built: Vec<Column> = columns
        .names
        .iter()
        .zip(columns.values)
        .map(|(name, values)| {
            let name: PlSmallStr = (*name).into();
            match values {
                Values::Int(v) => Column::new(name, v),
                Values::Float(v) => Column::new(name, v),
                Values::Text(v) => Column::new(name, v),
            }
        })
        .collect();
    let df = DataFrame::new_infer_height(built).expect("columns have equal length");
    if n == 0 { df.clear() } else { df }
}

/// Serialises one row (a struct) into [`Columns`].
struct RowSink<'a>(&'a mut Columns);

/// Serialises one field's value into [`Columns`].
struct FieldSink<'a>(&'a mut Columns);

impl ser::SerializeStruct for RowSink<'_> {
    type Ok = ();
    type Error = NotTidy;

    fn serialize_field<V: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &V,
    ) -> Result<(), NotTidy> {
        if self.0.field == self.0.names.len() {
            self.0.names.push(key);
        }
        value.serialize(FieldSink(self.0))
    }

    fn end(self) -> Result<(), NotTidy> {
        Ok(())
    }
}

/// The Serializer methods a row or a field does not use: a clear error, never a panic.
macro_rules! not_tidy {
    ($($name:ident($($arg:ty),*) -> $ret:ty;)*) => {
        $(fn $name(self, $(_: $arg),*) -> Result<$ret, NotTidy> {
            Err(NotTidy(concat!("not a tidy value: ", stringify!($name)).into()))
        })*
    };
}

/// The stubs a row and a field share: neither is a boolean, a small integer, a sequence or a map.
macro_rules! not_a_value {
    () => {
        not_tidy! {
            serialize_bool(bool) -> ();
            serialize_i8(i8) -> ();
            serialize_i16(i16) -> ();
            serialize_u8(u8) -> ();
            serialize_u16(u16) -> ();
            serialize_char(char) -> ();
            serialize_bytes(&[u8]) -> ();
            serialize_none() -> ();
            serialize_unit() -> ();
            serialize_unit_struct(&'static str) -> ();
            serialize_seq(Option<usize>) -> Self::SerializeSeq;
            serialize_tuple(usize) -> Self::SerializeTuple;
            serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
            serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
            serialize_map(Option<usize>) -> Self::SerializeMap;
            serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
        }
    };
}

impl<'a> ser::Serializer for RowSink<'a> {
    type Ok = ();
    type Error = NotTidy;
    type SerializeSeq = Impossible<(), NotTidy>;
    type SerializeTuple = Impossible<(), NotTidy>;
    type SerializeTupleStruct = Impossible<(), NotTidy>;
    type SerializeTupleVariant = Impossible<(), NotTidy>;
    type SerializeMap = Impossible<(), NotTidy>;
    type SerializeStruct = RowSink<'a>;
    type SerializeStructVariant = Impossible<(), NotTidy>;

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<RowSink<'a>, NotTidy> {
        Ok(self)
    }

    fn serialize_some<V: ?Sized + Serialize>(self, _: &V) -> Result<(), NotTidy> {
        Err(NotTidy("a row is a struct, not an option".into()))
    }

    fn serialize_newtype_struct<V: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &V,
    ) -> Result<(), NotTidy> {
        Err(NotTidy("a row is a struct with named fields".into()))
    }

    fn serialize_newtype_variant<V: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &V,
    ) -> Result<(), NotTidy> {
        Err(NotTidy("a row is a struct, not an enum".into()))
    }

    not_a_value!();
    not_tidy! {
        serialize_i32(i32) -> ();
        serialize_i64(i64) -> ();
        serialize_u32(u32) -> ();
        serialize_u64(u64) -> ();
        serialize_f32(f32) -> ();
        serialize_f64(f64) -> ();
        serialize_str(&str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
    }
}

impl ser::Serializer for FieldSink<'_> {
    type Ok = ();
    type Error = NotTidy;
    type SerializeSeq = Impossible<(), NotTidy>;
    type SerializeTuple = Impossible<(), NotTidy>;
    type SerializeTupleStruct = Impossible<(), NotTidy>;
    type SerializeTupleVariant = Impossible<(), NotTidy>;
    type SerializeMap = Impossible<(), NotTidy>;
    type SerializeStruct = Impossible<(), NotTidy>;
    type SerializeStructVariant = Impossible<(), NotTidy>;

    fn serialize_i64(self, v: i64) -> Result<(), NotTidy> {
        self.0.push(Scalar::Int(v))
    }

    fn serialize_u64(self, v: u64) -> Result<(), NotTidy> {
        let v = i64::try_from(v).map_err(|_| NotTidy(format!("{v} does not fit an i64")))?;
        self.0.push(Scalar::Int(v))
    }

    fn serialize_i32(self, v: i32) -> Result<(), NotTidy> {
        self.serialize_i64(v.into())
    }

    fn serialize_u32(self, v: u32) -> Result<(), NotTidy> {
        self.serialize_i64(v.into())
    }

    fn serialize_f64(self, v: f64) -> Result<(), NotTidy> {
        self.0.push(Scalar::Float(v))
    }

    fn serialize_f32(self, v: f32) -> Result<(), NotTidy> {
        self.serialize_f64(v.into())
    }

    fn serialize_str(self, v: &str) -> Result<(), NotTidy> {
        self.0.push(Scalar::Text(v.to_string()))
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        v: &'static str,
    ) -> Result<(), NotTidy> {
        self.serialize_str(v)
    }

    fn serialize_some<V: ?Sized + Serialize>(self, _: &V) -> Result<(), NotTidy> {
        Err(NotTidy("optional fields are not tidy columns".into()))
    }

    fn serialize_newtype_struct<V: ?Sized + Serialize>(
        self,
        _: &'static str,
        v: &V,
    ) -> Result<(), NotTidy> {
        v.serialize(self)
    }

    fn serialize_newtype_variant<V: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &V,
    ) -> Result<(), NotTidy> {
        Err(NotTidy("enums with data are not tidy values".into()))
    }

    not_a_value!();
    not_tidy! {
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
    }
}
