//! [`TypeSchema`]: the JSON Schema of a payload, reply or headers type, for the AsyncAPI
//! document.

use std::collections::BTreeMap;

use serde_json::Value;

/// The JSON Schema of a type that travels in messages: a subscriber's payload, its reply,
/// or its headers. Only documentation reads it (the AsyncAPI document); decoding never
/// does.
///
/// `#[subscriber]` records the schema of each argument and return type that implements
/// `schemars::JsonSchema` (feature `asyncapi`); by hand, set one with
/// [`SubscriberDef::payload_schema`](super::SubscriberDef::payload_schema) and
/// [`TypeSchema::of`] or [`TypeSchema::new`].
///
/// A schema refers to the named types it is made of as `#/components/schemas/<name>`;
/// their schemas are its [`definitions`](Self::definitions), which the document gathers
/// under `components.schemas`.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeSchema {
    name: String,
    schema: Value,
    definitions: BTreeMap<String, Value>,
}

impl TypeSchema {
    /// The schema `schema` of the type named `name` (a message name in the document).
    pub fn new(name: impl Into<String>, schema: Value) -> Self {
        Self {
            name: name.into(),
            schema,
            definitions: BTreeMap::new(),
        }
    }

    /// Adds the schema of a type this one refers to as `#/components/schemas/<name>`.
    #[must_use]
    pub fn with_definition(mut self, name: impl Into<String>, schema: Value) -> Self {
        self.definitions.insert(name.into(), schema);
        self
    }

    /// The schema of `T`, by schemars (JSON Schema draft 7, the base of AsyncAPI's schema
    /// format). A named type becomes a reference to its definition.
    #[cfg(feature = "asyncapi")]
    pub fn of<T: schemars::JsonSchema + ?Sized>() -> Self {
        let mut settings = schemars::generate::SchemaSettings::draft07();
        settings.definitions_path = "/components/schemas".into();
        settings.meta_schema = None;
        let mut generator = settings.into_generator();
        let schema = generator.subschema_for::<T>();
        let definitions = generator
            .take_definitions(true)
            .into_iter()
            .collect::<BTreeMap<_, _>>();
        Self {
            name: T::schema_name().into_owned(),
            schema: schema.to_value(),
            definitions,
        }
    }

    /// The type's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The schema (a `$ref` for a named type).
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// The schemas of the named types it refers to, by name.
    pub fn definitions(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.definitions
            .iter()
            .map(|(name, schema)| (name.as_str(), schema))
    }
}

/// Used by `#[subscriber]`: the schema of a type if it implements `JsonSchema` (feature
/// `asyncapi`), else none, chosen at compile time by method resolution.
#[doc(hidden)]
pub mod probe {
    use std::marker::PhantomData;

    use super::TypeSchema;

    /// A type whose schema is asked for.
    pub struct Probe<T: ?Sized>(PhantomData<T>);

    impl<T: ?Sized> Probe<T> {
        /// The probe of `T`.
        pub const fn new() -> Self {
            Probe(PhantomData)
        }
    }

    impl<T: ?Sized> Default for Probe<T> {
        fn default() -> Self {
            Self::new()
        }
    }

    /// First choice: the type has a schema.
    pub trait ViaJsonSchema {
        /// The schema.
        fn type_schema(&self) -> Option<TypeSchema>;
    }

    #[cfg(feature = "asyncapi")]
    impl<T: schemars::JsonSchema + ?Sized> ViaJsonSchema for Probe<T> {
        fn type_schema(&self) -> Option<TypeSchema> {
            Some(TypeSchema::of::<T>())
        }
    }

    /// Second choice (through auto-ref): no schema.
    pub trait NoSchema {
        /// None.
        fn type_schema(&self) -> Option<TypeSchema> {
            None
        }
    }

    impl<T: ?Sized> NoSchema for &Probe<T> {}
}

#[cfg(all(test, feature = "asyncapi"))]
mod tests {
    use super::probe::{NoSchema as _, Probe, ViaJsonSchema as _};
    use super::*;

    #[derive(schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Order {
        id: u64,
        lines: Vec<Line>,
    }

    #[derive(schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Line {
        sku: String,
    }

    struct NotDocumented;

    #[test]
    fn a_named_type_is_a_reference_to_its_definition() {
        let schema = TypeSchema::of::<Order>();
        assert_eq!(schema.name(), "Order");
        assert_eq!(
            schema.schema(),
            &serde_json::json!({ "$ref": "#/components/schemas/Order" })
        );
        let names: Vec<&str> = schema.definitions().map(|(name, _)| name).collect();
        assert_eq!(names, ["Line", "Order"]);
        let order = schema.definitions().find(|(n, _)| *n == "Order").unwrap().1;
        assert_eq!(
            order["properties"]["lines"]["items"],
            serde_json::json!({ "$ref": "#/components/schemas/Line" })
        );
    }

    #[test]
    // The borrow is the point: it is what `#[subscriber]` writes, so that a type without a
    // schema falls back to `NoSchema` through auto-ref.
    #[allow(clippy::needless_borrow)]
    fn the_probe_finds_a_schema_only_where_there_is_one() {
        assert!((&Probe::<Order>::new()).type_schema().is_some());
        assert!((&Probe::<u64>::new()).type_schema().is_some());
        assert!((&Probe::<NotDocumented>::new()).type_schema().is_none());
    }
}
