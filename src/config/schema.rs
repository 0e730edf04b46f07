//! The shape of the configuration, read off the `Raw…` types themselves: which key holds a
//! string, a number, a boolean, a list, a table. Environment overrides are typed by it (a token
//! made of digits is still a string), and values of the wrong type are refused with their key
//! and their type only, never their text (it may be a secret).
//!
//! The shape is traced once by deserializing the raw configuration from a stand-in
//! deserializer that answers every request with an empty value and writes down what was asked
//! for, at which key. A key added to a `Raw…` struct is in the shape with no further code.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};

/// What a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Str,
    Int,
    Float,
    Bool,
    /// A list: its items are at `key[]`.
    Seq,
    /// A table of named entries chosen by the user: each entry is at `key.*`.
    Map,
    /// A table of fixed keys (a section).
    Table,
    /// Anything (no type requested).
    Any,
}

impl Kind {
    /// How the kind is named in a message.
    pub(super) fn describe(self) -> &'static str {
        match self {
            Kind::Str => "a string (in quotes)",
            Kind::Int => "a whole number",
            Kind::Float => "a number",
            Kind::Bool => "true or false",
            Kind::Seq => "a list ([…])",
            Kind::Map | Kind::Table => "a table",
            Kind::Any => "a value",
        }
    }

    /// Whether a parsed TOML value has this kind.
    pub(super) fn admits(self, v: &toml::Value) -> bool {
        use toml::Value as V;
        matches!(
            (self, v),
            (Kind::Any, _)
                | (Kind::Str, V::String(_))
                | (Kind::Int, V::Integer(_))
                | (Kind::Float, V::Float(_) | V::Integer(_))
                | (Kind::Bool, V::Boolean(_))
                | (Kind::Seq, V::Array(_))
                | (Kind::Map | Kind::Table, V::Table(_))
        )
    }
}

/// How a TOML value's type is named in a message (never its content).
pub(super) fn type_name(v: &toml::Value) -> &'static str {
    use toml::Value as V;
    match v {
        V::String(_) => "a string",
        V::Integer(_) => "an integer",
        V::Float(_) => "a decimal number",
        V::Boolean(_) => "a boolean",
        V::Datetime(_) => "a date",
        V::Array(_) => "a list",
        V::Table(_) => "a table",
    }
}

/// Key patterns (`sms.providers[].auth_token`, `templates.sms_max_parts_by_kind.*`) and what
/// each holds. The root is the empty pattern.
#[derive(Debug, Default)]
pub(super) struct Schema(BTreeMap<String, Kind>);

impl Schema {
    /// Traces the shape of `T`; the error is the one `T`'s deserializer gave the tracer.
    pub(super) fn of<'de, T: Deserialize<'de>>() -> Result<Schema, Error> {
        let out = RefCell::new(BTreeMap::new());
        let traced = T::deserialize(Tracer {
            path: String::new(),
            out: &out,
        });
        let schema = Schema(out.into_inner());
        traced.map(|_| schema)
    }

    pub(super) fn kind(&self, pattern: &str) -> Option<Kind> {
        self.0.get(pattern).copied()
    }

    /// The pattern of `key` inside the value at `parent`: a map's entries share `.*`.
    pub(super) fn child(&self, parent: &str, key: &str) -> String {
        match self.kind(parent) {
            Some(Kind::Map) => join(parent, "*"),
            _ => join(parent, key),
        }
    }

    /// The pattern of an item of the list at `parent`.
    pub(super) fn item(parent: &str) -> String {
        format!("{parent}[]")
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

type Error = de::value::Error;

/// The stand-in deserializer: records the kind asked for at its path, answers with an empty
/// value of that kind.
struct Tracer<'a> {
    path: String,
    out: &'a RefCell<BTreeMap<String, Kind>>,
}

impl Tracer<'_> {
    fn record(&self, kind: Kind) {
        self.out
            .borrow_mut()
            .entry(self.path.clone())
            .or_insert(kind);
    }

    fn at(&self, path: String) -> Tracer<'_> {
        Tracer {
            path,
            out: self.out,
        }
    }
}

macro_rules! signed {
    ($($m:ident),*) => {$(
        fn $m<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            self.record(Kind::Int);
            v.visit_i64(0)
        }
    )*};
}

macro_rules! unsigned {
    ($($m:ident),*) => {$(
        fn $m<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            self.record(Kind::Int);
            v.visit_u64(0)
        }
    )*};
}

impl<'de> Deserializer<'de> for Tracer<'_> {
    type Error = Error;

    signed!(
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64
    );
    unsigned!(
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64
    );

    fn deserialize_i128<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.record(Kind::Int);
        v.visit_i128(0)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.record(Kind::Int);
        v.visit_u128(0)
    }

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.record(Kind::Any);
        v.visit_unit()
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.record(Kind::Bool);
        v.visit_bool(false)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.record(Kind::Float);
        v.visit_f64(0.0)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.record(Kind::Float);
        v.visit_f64(0.0)
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.record(Kind::Str);
        v.visit_char('x')
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.record(Kind::Str);
        v.visit_str("")
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.record(Kind::Str);
        v.visit_string(String::new())
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.record(Kind::Str);
        v.visit_bytes(&[])
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.record(Kind::Str);
        v.visit_byte_buf(Vec::new())
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.record(Kind::Any);
        v.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.record(Kind::Seq);
        v.visit_seq(OneItem {
            tracer: Some(self.at(Schema::item(&self.path))),
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, Error> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.record(Kind::Map);
        v.visit_map(Entries {
            keys: &["*"],
            next: 0,
            tracer: &self,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        self.record(Kind::Table);
        v.visit_map(Entries {
            keys: fields,
            next: 0,
            tracer: &self,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        self.record(Kind::Str);
        let first = variants
            .first()
            .ok_or_else(|| de::Error::custom("an enum without variants"))?;
        v.visit_enum(IntoDeserializer::<Error>::into_deserializer(*first))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_unit()
    }
}

/// A list of one item.
struct OneItem<'a> {
    tracer: Option<Tracer<'a>>,
}

impl<'de> SeqAccess<'de> for OneItem<'_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.tracer.take() {
            Some(t) => seed.deserialize(t).map(Some),
            None => Ok(None),
        }
    }
}

/// A struct's fields, or a map's one entry `*`.
struct Entries<'a, 'b> {
    keys: &'static [&'static str],
    next: usize,
    tracer: &'b Tracer<'a>,
}

impl<'de> MapAccess<'de> for Entries<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.keys.get(self.next) {
            Some(key) => seed
                .deserialize(IntoDeserializer::<Error>::into_deserializer(*key))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let key = self.keys.get(self.next).copied().unwrap_or("*");
        self.next += 1;
        seed.deserialize(self.tracer.at(join(&self.tracer.path, key)))
    }
}
