//! `#[ruststream::app]`: a function that builds the `App` becomes the binary's `main`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{ItemFn, ReturnType};

/// Expands `#[ruststream::app] item`. On error, the function is kept as written (unless
/// it is `main` itself) next to the error and an empty `main`, so the error stands alone.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(args, item.clone()) {
        Ok(expanded) => expanded,
        Err(error) => {
            let error = error.to_compile_error();
            let is_main = syn::parse2::<ItemFn>(item.clone())
                .is_ok_and(|function| function.sig.ident == "main");
            let item = if is_main { TokenStream::new() } else { item };
            quote! {
                #error
                #item
                fn main() {}
            }
        }
    }
}

fn try_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let function: ItemFn = syn::parse2(item).map_err(|error| {
        syn::Error::new(
            error.span(),
            "#[ruststream::app] goes on the function that builds the app, as in \
             `#[ruststream::app] fn app() -> App { .. }`",
        )
    })?;
    let mut errors: Vec<syn::Error> = Vec::new();
    if !args.is_empty() {
        errors.push(syn::Error::new(
            args.span(),
            "#[ruststream::app] takes no arguments: set the title, version and description \
             on the `App` it returns",
        ));
    }
    let sig = &function.sig;
    let name = &sig.ident;
    if name == "main" {
        errors.push(syn::Error::new(
            name.span(),
            "#[ruststream::app] generates `main` itself: name this function after what it \
             does, as in `fn app() -> App`",
        ));
    }
    if !sig.inputs.is_empty() {
        errors.push(syn::Error::new(
            sig.inputs.span(),
            format!(
                "the function #[ruststream::app] calls takes no arguments: `fn {name}() -> App`"
            ),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new(
            sig.generics.span(),
            format!(
                "the function #[ruststream::app] calls cannot be generic: `fn {name}() -> App`"
            ),
        ));
    }
    if let ReturnType::Default = sig.output {
        errors.push(syn::Error::new(
            sig.ident.span(),
            format!("the function #[ruststream::app] calls returns the app: `fn {name}() -> App`"),
        ));
    }
    let mut errors = errors.into_iter();
    if let Some(mut first) = errors.next() {
        for error in errors {
            first.combine(error);
        }
        return Err(first);
    }
    Ok(quote! {
        #function

        fn main() -> ::std::process::ExitCode {
            ::ruststream::__private::app_main!(#name)
        }
    })
}
