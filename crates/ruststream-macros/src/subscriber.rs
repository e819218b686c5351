//! `#[subscriber]`: an async fn becomes a handler item a router can mount.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{
    Attribute, Expr, ExprLit, FnArg, ItemFn, Lifetime, Lit, Meta, ReturnType, Type, TypePath,
};

use crate::options::Args;
use crate::source::source_type;

/// Expands `#[subscriber(args)] item`. On error, the function is kept as written next to
/// the error, so its other uses do not add errors of their own.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(args, item.clone()) {
        Ok(expanded) => expanded,
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#error #item)
        }
    }
}

fn try_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let function: ItemFn = syn::parse2(item).map_err(|error| {
        syn::Error::new(
            error.span(),
            "#[subscriber] goes on an `async fn`, as in \
             `#[subscriber(\"orders\")] async fn handle_order(order: Order) {}`",
        )
    })?;
    let args = syn::parse2::<Args>(args);
    // Report problems with the function and with the arguments together.
    let checked = check_signature(&function);
    let (args, source_ty) = match (args, checked) {
        (Ok(args), Ok(())) => {
            if args.is_batch() {
                check_batch_signature(&function)?;
            }
            let ty = source_type(&args.source)?;
            (args, ty)
        }
        (Err(mut first), Err(second)) => {
            first.combine(second);
            return Err(first);
        }
        (Err(error), _) | (_, Err(error)) => return Err(error),
    };
    Ok(generate(&function, &args, &source_ty))
}

/// An async free function, not generic, without `self`.
fn check_signature(function: &ItemFn) -> syn::Result<()> {
    let sig = &function.sig;
    let name = &sig.ident;
    let mut errors: Vec<syn::Error> = Vec::new();
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            format!("#[subscriber] needs an `async fn`: write `async fn {name}(..)`"),
        ));
    }
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new(
            constness.span,
            "#[subscriber] handlers cannot be `const`: remove `const`",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new(
            unsafety.span,
            "#[subscriber] handlers cannot be `unsafe`: remove `unsafe`",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new(
            abi.span(),
            "#[subscriber] handlers use the Rust ABI: remove the `extern`",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new(
            sig.generics.span(),
            format!(
                "#[subscriber] handlers cannot be generic: give `{name}` concrete argument types \
                 (borrowing extractors take an elided lifetime, as in `Raw<'_>` or `&Headers`)"
            ),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new(
            variadic.span(),
            "#[subscriber] handlers cannot be variadic",
        ));
    }
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.push(syn::Error::new(
                receiver.span(),
                "#[subscriber] goes on a free `async fn`, not a method: remove `self` \
                 (share values with handlers through `App::state` and a `State<T>` argument)",
            )),
            FnArg::Typed(typed) => {
                if let Type::ImplTrait(impl_trait) = &*typed.ty {
                    errors.push(syn::Error::new(
                        impl_trait.span(),
                        "#[subscriber] handlers cannot be generic: replace `impl Trait` with \
                         a concrete extractor type",
                    ));
                }
            }
        }
    }
    let mut errors = errors.into_iter();
    match errors.next() {
        None => Ok(()),
        Some(mut first) => {
            for error in errors {
                first.combine(error);
            }
            Err(first)
        }
    }
}

/// A batch handler takes one argument, the batch: `Vec<T>` of decoded payloads.
fn check_batch_signature(function: &ItemFn) -> syn::Result<()> {
    let sig = &function.sig;
    let name = &sig.ident;
    let is_vec = |input: &FnArg| match input {
        FnArg::Typed(typed) => match &*typed.ty {
            Type::Path(TypePath { qself: None, path }) => {
                path.segments.last().is_some_and(|last| last.ident == "Vec")
            }
            _ => false,
        },
        FnArg::Receiver(_) => false,
    };
    match sig.inputs.iter().collect::<Vec<_>>().as_slice() {
        [batch] if is_vec(batch) => Ok(()),
        _ => Err(syn::Error::new(
            sig.inputs.span(),
            format!(
                "a batch handler (`batch = ..`) takes one argument, the batch of decoded \
                 payloads: write `async fn {name}(items: Vec<Item>)`"
            ),
        )),
    }
}

/// The text of the doc comment: what the AsyncAPI description defaults to.
fn doc_text(attrs: &[Attribute]) -> Option<String> {
    let lines: Vec<String> = attrs
        .iter()
        .filter_map(|attr| match &attr.meta {
            Meta::NameValue(pair) if pair.path.is_ident("doc") => match &pair.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(text),
                    ..
                }) => Some(text.value()),
                _ => None,
            },
            _ => None,
        })
        .flat_map(|text| {
            // `split`, not `lines`: an empty `///` line is a paragraph break to keep.
            text.split('\n')
                .map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let text = lines.join("\n").trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// Gives elided lifetimes (`'_`, `&T`) the lifetime `'a` of `Handler::call`, so borrowing
/// extractors borrow from the message.
struct Elided;

impl VisitMut for Elided {
    fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
        if lifetime.ident == "_" {
            *lifetime = Lifetime::new("'a", lifetime.span());
        }
    }

    fn visit_type_reference_mut(&mut self, reference: &mut syn::TypeReference) {
        if reference.lifetime.is_none() {
            reference.lifetime = Some(Lifetime::new("'a", reference.and_token.span));
        }
        syn::visit_mut::visit_type_reference_mut(self, reference);
    }

    // Elision inside these has its own scope (`fn(&T)`, `Fn(&T)`): leave it alone.
    fn visit_type_bare_fn_mut(&mut self, _: &mut syn::TypeBareFn) {}

    fn visit_parenthesized_generic_arguments_mut(
        &mut self,
        _: &mut syn::ParenthesizedGenericArguments,
    ) {
    }
}

/// Gives elided lifetimes (`'_`, `&T`) the lifetime `'static`, so an argument's type can be
/// named outside `Handler::call` (for its schema).
struct Static;

impl VisitMut for Static {
    fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
        if lifetime.ident == "_" {
            *lifetime = Lifetime::new("'static", lifetime.span());
        }
    }

    fn visit_type_reference_mut(&mut self, reference: &mut syn::TypeReference) {
        if reference.lifetime.is_none() {
            reference.lifetime = Some(Lifetime::new("'static", reference.and_token.span));
        }
        syn::visit_mut::visit_type_reference_mut(self, reference);
    }

    fn visit_type_bare_fn_mut(&mut self, _: &mut syn::TypeBareFn) {}

    fn visit_parenthesized_generic_arguments_mut(
        &mut self,
        _: &mut syn::ParenthesizedGenericArguments,
    ) {
    }
}

/// The type of the reply a return type carries, if it can be one: `T` of `Result<T, E>`
/// and of `Respond<T>`, else the type itself; `()` carries none.
fn reply_type(output: &ReturnType) -> Option<Type> {
    fn unwrap(ty: &Type) -> Option<Type> {
        match ty {
            Type::Tuple(tuple) if tuple.elems.is_empty() => None,
            Type::Paren(inner) => unwrap(&inner.elem),
            Type::Group(inner) => unwrap(&inner.elem),
            Type::Path(TypePath { qself: None, path }) => {
                let last = path.segments.last()?;
                if last.ident == "Result" || last.ident == "Respond" {
                    if let syn::PathArguments::AngleBracketed(args) = &last.arguments
                        && let Some(syn::GenericArgument::Type(inner)) = args.args.first()
                    {
                        return unwrap(inner);
                    }
                    return None;
                }
                Some(ty.clone())
            }
            _ => Some(ty.clone()),
        }
    }
    match output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => {
            let mut ty = unwrap(ty)?;
            Static.visit_type_mut(&mut ty);
            Some(ty)
        }
    }
}

/// `(&Probe::<T>::new()).type_schema()`: `T`'s schema if it implements `JsonSchema`.
fn probe(ty: &Type) -> TokenStream {
    quote!((&::ruststream::runtime::probe::Probe::<#ty>::new()).type_schema())
}

/// `T` of a `Vec<T>` type.
fn vec_element(ty: &Type) -> Option<&Type> {
    let Type::Path(TypePath { qself: None, path }) = ty else {
        return None;
    };
    let last = path.segments.last()?;
    if last.ident != "Vec" {
        return None;
    }
    match &last.arguments {
        syn::PathArguments::AngleBracketed(args) => match args.args.first()? {
            syn::GenericArgument::Type(element) => Some(element),
            _ => None,
        },
        _ => None,
    }
}

/// Whether the declared return type is a `Result` (its last path segment says so).
fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(TypePath { qself: None, path }) => path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "Result"),
        Type::Paren(inner) => is_result(&inner.elem),
        Type::Group(inner) => is_result(&inner.elem),
        _ => false,
    }
}

fn generate(function: &ItemFn, args: &Args, source_ty: &TokenStream) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    let ident = &sig.ident;
    let fn_name = ident.unraw().to_string();
    let handler_ty = format_ident!("__ruststream_subscriber_{}", fn_name, span = ident.span());

    let mut docs = Vec::new();
    let mut cfgs = Vec::new();
    let mut others = Vec::new();
    for attr in attrs {
        if attr.path().is_ident("doc") {
            docs.push(attr);
        } else if attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr") {
            cfgs.push(attr);
        } else {
            others.push(attr);
        }
    }

    let inputs = &sig.inputs;
    let output = &sig.output;

    // Extract each argument in order; the first that cannot be extracted settles the
    // message by the decode-failure policy.
    let mut arg_names = Vec::new();
    let mut extractions = TokenStream::new();
    // The payload's schema: that of the first argument whose type has one.
    let mut payload_schema =
        quote!(::core::option::Option::<::ruststream::runtime::TypeSchema>::None);
    for (index, input) in sig.inputs.iter().enumerate() {
        let FnArg::Typed(typed) = input else {
            continue;
        };
        let name = format_ident!("__ruststream_arg{}", index);
        let mut static_ty = (*typed.ty).clone();
        Static.visit_type_mut(&mut static_ty);
        let schema = probe(&static_ty);
        payload_schema = quote!(#payload_schema.or_else(|| #schema));
        let mut ty = (*typed.ty).clone();
        Elided.visit_type_mut(&mut ty);
        let span = typed.ty.span();
        let extract = quote_spanned! {span=>
            <#ty as ::ruststream::runtime::FromMessage<'a>>::from_message(&message)
        };
        extractions.extend(quote! {
            let #name = match #extract {
                ::core::result::Result::Ok(value) => value,
                ::core::result::Result::Err(rejection) => {
                    return ::ruststream::runtime::Outcome::rejected(rejection);
                }
            };
        });
        arg_names.push(name);
    }

    let call = quote!(self.handle(#(#arg_names),*).await);
    let (return_span, returns_result) = match output {
        ReturnType::Default => (Span::call_site(), false),
        ReturnType::Type(_, ty) => (ty.span(), is_result(ty)),
    };
    let into_outcome = quote_spanned!(return_span=> into_handler_outcome);
    let settle = if returns_result {
        let failed = quote_spanned!(return_span=> ::ruststream::runtime::Outcome::failed(error));
        quote! {
            match #call {
                ::core::result::Result::Ok(value) => {
                    ::ruststream::runtime::returned::Returned(value).#into_outcome(reply)
                }
                ::core::result::Result::Err(error) => #failed,
            }
        }
    } else {
        quote! {
            let value = #call;
            ::ruststream::runtime::returned::Returned(value).#into_outcome(reply)
        }
    };

    let name_call = if args.has("name") {
        TokenStream::new()
    } else {
        quote!(.name(#fn_name))
    };
    let description_call = match doc_text(attrs) {
        Some(text) if !args.has("description") => quote!(.description(#text)),
        _ => TokenStream::new(),
    };
    let reply_schema = match reply_type(output) {
        Some(ty) => probe(&ty),
        None => quote!(::core::option::Option::<::ruststream::runtime::TypeSchema>::None),
    };
    let options = args.builder_calls();
    let source = &args.source;
    let mut batch_bound = TokenStream::new();
    let (handler_impl, subscriber_ty, new_subscriber, reply_schema) = if args.is_batch() {
        batch_bound = quote! {
            <#source_ty as ::ruststream::SubscriptionSource<__RuststreamBroker>>::Subscriber:
                ::ruststream::BatchSubscriber,
        };
        let batch_ty = sig.inputs.iter().find_map(|input| match input {
            FnArg::Typed(typed) => Some(&typed.ty),
            FnArg::Receiver(_) => None,
        });
        let handler_impl = quote! {
            impl ::ruststream::runtime::BatchHandler for #handler_ty {
                fn call<'a>(
                    &'a self,
                    batch: &'a [::ruststream::runtime::Message<'a>],
                ) -> impl ::core::future::Future<
                    Output = ::std::vec::Vec<::ruststream::runtime::Outcome>,
                > + ::core::marker::Send
                       + 'a {
                    let handler = ::ruststream::runtime::batch_handler_fn(
                        |values: #batch_ty| async move { #handler_ty.handle(values).await },
                    );
                    async move { ::ruststream::runtime::BatchHandler::call(&handler, batch).await }
                }
            }
        };
        // The payload is one element of the batch.
        if let Some(element) = batch_ty.and_then(|ty| vec_element(ty)) {
            let mut element = element.clone();
            Static.visit_type_mut(&mut element);
            payload_schema = probe(&element);
        }
        (
            handler_impl,
            quote!(::ruststream::runtime::Batch<Self>),
            quote!(::ruststream::runtime::SubscriberDef::batch(#source, self)),
            quote!(::core::option::Option::<::ruststream::runtime::TypeSchema>::None),
        )
    } else {
        let handler_impl = quote! {
            impl ::ruststream::runtime::Handler for #handler_ty {
                #[allow(unused_variables)]
                fn call<'a>(
                    &'a self,
                    message: ::ruststream::runtime::Message<'a>,
                    reply: &'a mut ::ruststream::runtime::ReplyBuffer,
                ) -> impl ::core::future::Future<Output = ::ruststream::runtime::Outcome>
                       + ::core::marker::Send
                       + 'a {
                    async move {
                        #[allow(unused_imports)]
                        use ::ruststream::runtime::returned::{ViaOutcome as _, ViaReply as _};
                        #extractions
                        #settle
                    }
                }
            }
        };
        (
            handler_impl,
            quote!(Self),
            quote!(::ruststream::runtime::SubscriberDef::new(#source, self)),
            reply_schema,
        )
    };
    let handle_doc = format!(
        "Calls `{fn_name}` as written, without a broker: for unit tests of the handler body."
    );
    let type_doc = format!("The handler `#[subscriber]` made of `{fn_name}`.");

    quote! {
        #(#cfgs)*
        #(#docs)*
        #[allow(non_upper_case_globals)]
        #vis const #ident: #handler_ty = #handler_ty;

        #(#cfgs)*
        #[doc = #type_doc]
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Default)]
        #vis struct #handler_ty;

        #(#cfgs)*
        impl ::core::fmt::Debug for #handler_ty {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(#fn_name)
            }
        }

        #(#cfgs)*
        impl #handler_ty {
            #[doc = #handle_doc]
            #(#others)*
            #vis async fn handle(&self, #inputs) #output #block
        }

        #(#cfgs)*
        #handler_impl

        #(#cfgs)*
        impl<__RuststreamBroker: ::ruststream::Broker>
            ::ruststream::runtime::IntoSubscriber<__RuststreamBroker> for #handler_ty
        where
            #source_ty: ::ruststream::SubscriptionSource<__RuststreamBroker>
                + ::core::clone::Clone
                + ::core::marker::Send
                + ::core::marker::Sync
                + 'static,
            #batch_bound
        {
            type Source = #source_ty;
            type Handler = #subscriber_ty;

            fn into_subscriber(self) -> ::ruststream::runtime::SubscriberDef<#source_ty, #subscriber_ty> {
                #[allow(unused_imports)]
                use ::ruststream::runtime::probe::{NoSchema as _, ViaJsonSchema as _};
                #new_subscriber
                    #name_call
                    #description_call
                    .payload_schema(#payload_schema)
                    .reply_schema(#reply_schema)
                    #options
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elided_lifetimes_become_the_message_lifetime() {
        let mut ty: Type = syn::parse_quote!(&Headers);
        Elided.visit_type_mut(&mut ty);
        assert_eq!(quote!(#ty).to_string(), "& 'a Headers");
        let mut ty: Type = syn::parse_quote!(Raw<'_>);
        Elided.visit_type_mut(&mut ty);
        assert_eq!(quote!(#ty).to_string(), "Raw < 'a >");
        let mut ty: Type = syn::parse_quote!(Box<dyn Fn(&str)>);
        Elided.visit_type_mut(&mut ty);
        assert_eq!(quote!(#ty).to_string(), "Box < dyn Fn (& str) >");
    }

    #[test]
    fn the_reply_type_is_what_a_result_or_respond_carries() {
        let reply = |output: ReturnType| reply_type(&output).map(|ty| quote!(#ty).to_string());
        assert_eq!(reply(syn::parse_quote!()), None);
        assert_eq!(reply(syn::parse_quote!(-> ())), None);
        assert_eq!(reply(syn::parse_quote!(-> Result<(), String>)), None);
        assert_eq!(reply(syn::parse_quote!(-> Quote)).as_deref(), Some("Quote"));
        assert_eq!(
            reply(syn::parse_quote!(-> Result<Respond<Quote>, Error>)).as_deref(),
            Some("Quote")
        );
        assert_eq!(
            reply(syn::parse_quote!(-> Result<Settle, String>)).as_deref(),
            Some("Settle")
        );
        assert_eq!(
            reply(syn::parse_quote!(-> Vec<&str>)).as_deref(),
            Some("Vec < & 'static str >")
        );
    }

    #[test]
    fn result_is_recognised_by_its_last_segment() {
        assert!(is_result(&syn::parse_quote!(Result<Quote, Error>)));
        assert!(is_result(&syn::parse_quote!(std::io::Result<()>)));
        assert!(!is_result(&syn::parse_quote!(Settle)));
        assert!(!is_result(&syn::parse_quote!(Option<u8>)));
    }

    #[test]
    fn the_doc_comment_is_the_description() {
        let function: ItemFn = syn::parse_quote! {
            /// Handles orders.
            ///
            ///  Indented.
            async fn handle() {}
        };
        assert_eq!(
            doc_text(&function.attrs).as_deref(),
            Some("Handles orders.\n\n Indented.")
        );
    }
}
