//! The type of a `#[subscriber]` source, read from how it is written.
//!
//! The generated `IntoSubscriber` impl must name the source's type, and a proc macro sees
//! only tokens. Two forms say their type: a string literal (`&'static str`), and a
//! descriptor built from its type, `OrdersStream::new("orders").durable("w")` (the seed's
//! contract has descriptor builder methods return `Self`, so the type is the path before
//! the first associated call).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Lit, Path};

/// The source's type, or an error naming the two accepted forms.
pub(crate) fn source_type(source: &Expr) -> syn::Result<TokenStream> {
    let mut expr = source;
    loop {
        match expr {
            Expr::Lit(lit) if matches!(lit.lit, Lit::Str(_)) => {
                return Ok(quote_spanned!(source.span()=> &'static str));
            }
            Expr::MethodCall(call) => expr = &call.receiver,
            Expr::Paren(inner) => expr = &inner.expr,
            Expr::Group(inner) => expr = &inner.expr,
            Expr::Call(call) => {
                if let Some(ty) = type_before_constructor(&call.func) {
                    return Ok(ty);
                }
                break;
            }
            _ => break,
        }
    }
    Err(syn::Error::new(
        source.span(),
        "#[subscriber] cannot tell the type of this source; write a name as a string \
         literal, as in `#[subscriber(\"orders\")]`, or build a descriptor from its type, \
         as in `#[subscriber(OrdersStream::new(\"orders\").durable(\"workers\"))]` \
         (for any other expression, mount the handler by hand: \
         `SubscriberDef::new(source, handler)`)",
    ))
}

/// `Type::new` (or `path::to::Type::<T>::with_config`) → `Type`.
fn type_before_constructor(func: &Expr) -> Option<TokenStream> {
    let Expr::Path(path) = func else {
        return None;
    };
    if path.qself.is_some() || path.path.segments.len() < 2 {
        return None;
    }
    let mut ty: Path = path.path.clone();
    ty.segments.pop();
    ty.segments.pop_punct();
    Some(quote!(#ty))
}

#[cfg(test)]
mod tests {
    use super::source_type;

    fn type_of(source: &str) -> Option<String> {
        let expr: syn::Expr = syn::parse_str(source).unwrap();
        source_type(&expr).ok().map(|ty| ty.to_string())
    }

    #[test]
    fn a_string_literal_is_a_static_str() {
        assert_eq!(type_of("\"orders\"").as_deref(), Some("& 'static str"));
    }

    #[test]
    fn a_builder_chain_is_the_type_before_its_constructor() {
        assert_eq!(
            type_of("OrdersStream::new(\"orders\").durable(\"w\").ack_wait(5)").as_deref(),
            Some("OrdersStream")
        );
        assert_eq!(
            type_of("ruststream::memory::MemorySource::new(\"x\")").as_deref(),
            Some("ruststream :: memory :: MemorySource")
        );
        assert_eq!(
            type_of("String::from(\"orders\")").as_deref(),
            Some("String")
        );
    }

    #[test]
    fn other_expressions_are_refused() {
        assert_eq!(type_of("ORDERS"), None);
        assert_eq!(type_of("make_source()"), None);
        assert_eq!(type_of("format!(\"orders.{}\", 1)"), None);
        assert_eq!(type_of("<T as Trait>::new()"), None);
    }
}
