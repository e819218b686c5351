//! The arguments of `#[subscriber(..)]`: the source, then `key = value` options.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Expr, Ident, Token};

/// Every option, as the error for an unknown one lists them.
const KNOWN: &[&str] = &[
    "name",
    "workers",
    "by_key",
    "format",
    "codec",
    "on_decode_error",
    "on_error",
    "on_panic",
    "max_attempts",
    "dead_letter",
    "publish_to",
    "layer",
    "description",
    "headers",
    "batch",
    "max_wait",
];

/// What a `key = value` option becomes on the `SubscriberDef` builder.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Name,
    Workers,
    ByKey,
    Format,
    OnDecodeError,
    OnError,
    OnPanic,
    MaxAttempts,
    DeadLetter,
    PublishTo,
    Layer,
    Description,
    Headers,
    Batch,
    MaxWait,
}

impl Kind {
    fn of(key: &str) -> Option<Self> {
        Some(match key {
            "name" => Kind::Name,
            "workers" => Kind::Workers,
            "by_key" => Kind::ByKey,
            "format" | "codec" => Kind::Format,
            "on_decode_error" => Kind::OnDecodeError,
            "on_error" => Kind::OnError,
            "on_panic" => Kind::OnPanic,
            "max_attempts" => Kind::MaxAttempts,
            "dead_letter" => Kind::DeadLetter,
            "publish_to" => Kind::PublishTo,
            "layer" => Kind::Layer,
            "description" => Kind::Description,
            "headers" => Kind::Headers,
            "batch" => Kind::Batch,
            "max_wait" => Kind::MaxWait,
            _ => return None,
        })
    }

    /// An example of the option, for error messages.
    fn example(self) -> &'static str {
        match self {
            Kind::Name => "name = \"handle_order\"",
            Kind::Workers => "workers = 4",
            Kind::ByKey => "workers = 8, by_key",
            Kind::Format => "format = MsgPack",
            Kind::OnDecodeError => "on_decode_error = DeadLetter",
            Kind::OnError => "on_error = Retry",
            Kind::OnPanic => "on_panic = Drop",
            Kind::MaxAttempts => "max_attempts = 5",
            Kind::DeadLetter => "dead_letter = \"orders.dead\"",
            Kind::PublishTo => "publish_to = \"orders.done\"",
            Kind::Layer => "layer = TimeoutLayer::new(Duration::from_secs(5))",
            Kind::Description => "description = \"...\"",
            Kind::Headers => "headers = OrderHeaders",
            Kind::Batch => "batch = 100",
            Kind::MaxWait => "batch = 100, max_wait = \"50ms\"",
        }
    }

    fn repeatable(self) -> bool {
        matches!(self, Kind::PublishTo | Kind::Layer)
    }
}

/// One option as written.
struct Opt {
    key: Ident,
    kind: Kind,
    value: Option<Expr>,
}

/// The parsed `#[subscriber(..)]` arguments.
pub(crate) struct Args {
    /// The source expression, as written.
    pub(crate) source: Expr,
    options: Vec<Opt>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(syn::Error::new(
                Span::call_site(),
                "#[subscriber] needs a source first: a name, as in `#[subscriber(\"orders\")]`, \
                 or a broker descriptor, as in `#[subscriber(OrdersStream::new(\"orders\"))]`",
            ));
        }
        let source: Expr = input.parse()?;
        if let Expr::Assign(assign) = &source
            && let Expr::Path(path) = &*assign.left
            && path
                .path
                .get_ident()
                .is_some_and(|key| Kind::of(&key.to_string()).is_some())
        {
            return Err(syn::Error::new(
                source.span(),
                "#[subscriber] needs a source before its options: \
                 write `#[subscriber(\"orders\", workers = 4)]`",
            ));
        }
        let mut options = Vec::new();
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key = Ident::parse_any(input)?;
            let name = key.to_string();
            let Some(kind) = Kind::of(&name) else {
                return Err(unknown_option(&key));
            };
            let value = if input.peek(Token![=]) {
                let equals: Token![=] = input.parse()?;
                if kind == Kind::ByKey {
                    return Err(syn::Error::new(
                        equals.span,
                        "`by_key` is a flag and takes no value: write `workers = 8, by_key`",
                    ));
                }
                if input.is_empty() || input.peek(Token![,]) {
                    return Err(missing_value(&key, kind));
                }
                Some(input.parse::<Expr>()?)
            } else if kind == Kind::ByKey {
                None
            } else {
                return Err(missing_value(&key, kind));
            };
            options.push(Opt { key, kind, value });
        }
        let args = Args { source, options };
        args.check()?;
        Ok(args)
    }
}

fn missing_value(key: &Ident, kind: Kind) -> syn::Error {
    syn::Error::new(
        key.span(),
        format!(
            "option `{key}` of #[subscriber] needs a value: write `{}`",
            kind.example()
        ),
    )
}

fn unknown_option(key: &Ident) -> syn::Error {
    let name = key.to_string();
    let suggestion = KNOWN
        .iter()
        .map(|known| (edit_distance(&name, known), known))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, known)| format!(" (did you mean `{known}`?)"))
        .unwrap_or_default();
    syn::Error::new(
        key.span(),
        format!(
            "unknown option `{name}` of #[subscriber]{suggestion}; the options are: {}",
            KNOWN.join(", ")
        ),
    )
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

impl Args {
    /// Duplicates, and `by_key` without `workers`.
    fn check(&self) -> syn::Result<()> {
        let mut errors: Option<syn::Error> = None;
        let mut push = |error: syn::Error| match &mut errors {
            Some(errors) => errors.combine(error),
            None => errors = Some(error),
        };
        for (index, option) in self.options.iter().enumerate() {
            if option.kind.repeatable() {
                continue;
            }
            if let Some(first) = self.options[..index]
                .iter()
                .find(|earlier| earlier.kind == option.kind)
            {
                let message = if first.key == option.key {
                    format!("option `{}` is given twice; keep one of them", option.key)
                } else {
                    format!(
                        "option `{}` repeats `{}` (they are the same option); keep one of them",
                        option.key, first.key
                    )
                };
                push(syn::Error::new(option.key.span(), message));
            }
        }
        if let Some(by_key) = self.options.iter().find(|o| o.kind == Kind::ByKey)
            && !self.options.iter().any(|o| o.kind == Kind::Workers)
        {
            push(syn::Error::new(
                by_key.key.span(),
                "`by_key` needs a number of lanes: write `workers = 8, by_key`",
            ));
        }
        if let Some(max_wait) = self.options.iter().find(|o| o.kind == Kind::MaxWait) {
            if !self.is_batch() {
                push(syn::Error::new(
                    max_wait.key.span(),
                    "`max_wait` is how long a batch waits to fill: give the batch size too, \
                     as in `batch = 100, max_wait = \"50ms\"`",
                ));
            }
            if let Some(Err(error)) = max_wait.value.as_ref().map(duration) {
                push(error);
            }
        }
        match errors {
            Some(errors) => Err(errors),
            None => Ok(()),
        }
    }

    /// Whether the handler takes batches (`batch = N`).
    pub(crate) fn is_batch(&self) -> bool {
        self.options.iter().any(|o| o.kind == Kind::Batch)
    }

    /// Whether the options name the handler.
    pub(crate) fn has(&self, key: &str) -> bool {
        Kind::of(key).is_some_and(|kind| self.options.iter().any(|o| o.kind == kind))
    }

    /// The builder calls after `SubscriberDef::new(..)`, in the order written.
    pub(crate) fn builder_calls(&self) -> TokenStream {
        let by_key = self.options.iter().any(|o| o.kind == Kind::ByKey);
        let mut calls = TokenStream::new();
        for option in &self.options {
            let Some(value) = &option.value else {
                continue;
            };
            let span = option.key.span();
            let call = match option.kind {
                Kind::Name => quote_spanned!(span=> .name(#value)),
                Kind::Workers if by_key => quote_spanned!(span=> .workers_by_key(#value)),
                Kind::Workers => quote_spanned!(span=> .workers(#value)),
                Kind::ByKey => continue,
                Kind::Format => {
                    let value = shorthand(value, &["Json", "MsgPack", "Cbor"], "Format");
                    quote_spanned!(span=> .format(#value))
                }
                Kind::OnDecodeError => {
                    let value = policy(value);
                    quote_spanned!(span=> .on_decode_error(#value))
                }
                Kind::OnError => {
                    let value = policy(value);
                    quote_spanned!(span=> .on_error(#value))
                }
                Kind::OnPanic => {
                    let value = policy(value);
                    quote_spanned!(span=> .on_panic(#value))
                }
                Kind::MaxAttempts => quote_spanned!(span=> .max_attempts(#value)),
                Kind::DeadLetter => quote_spanned!(span=> .dead_letter(#value)),
                Kind::PublishTo => quote_spanned!(span=> .publish_to(#value)),
                Kind::Layer => quote_spanned!(span=> .layer(#value)),
                Kind::Description => quote_spanned!(span=> .description(#value)),
                // The type of the declared headers: its schema, if it has one.
                Kind::Headers => quote_spanned!(span=> .headers_schema(
                    (&::ruststream::runtime::probe::Probe::<#value>::new()).type_schema()
                )),
                Kind::Batch => quote_spanned!(span=> .max_messages(#value)),
                Kind::MaxWait => match duration(value) {
                    Ok(wait) => quote_spanned!(span=> .max_wait(#wait)),
                    Err(error) => error.to_compile_error(),
                },
            };
            calls.extend(call);
        }
        calls
    }
}

/// A wait: a string literal with a unit (`"50ms"`, `"2s"`, `"500us"`, `"1m"`) becomes a
/// `Duration`; any other expression is used as written (a `Duration`).
fn duration(value: &Expr) -> syn::Result<TokenStream> {
    let Expr::Lit(syn::ExprLit {
        lit: syn::Lit::Str(text),
        ..
    }) = value
    else {
        return Ok(quote!(#value));
    };
    let written = text.value();
    let invalid = || {
        syn::Error::new(
            text.span(),
            format!(
                "`{written}` is not a wait: write a whole number with a unit, \
                 as in \"50ms\", \"2s\", \"500us\" or \"1m\""
            ),
        )
    };
    let digits = written.trim().len()
        - written
            .trim()
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .len();
    let (number, unit) = written.trim().split_at(digits);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let span = text.span();
    Ok(match unit.trim() {
        "us" | "µs" => quote_spanned!(span=> ::core::time::Duration::from_micros(#number)),
        "ms" => quote_spanned!(span=> ::core::time::Duration::from_millis(#number)),
        "s" => quote_spanned!(span=> ::core::time::Duration::from_secs(#number)),
        "m" | "min" => {
            let seconds = number.checked_mul(60).ok_or_else(invalid)?;
            quote_spanned!(span=> ::core::time::Duration::from_secs(#seconds))
        }
        _ => return Err(invalid()),
    })
}

fn policy(value: &Expr) -> TokenStream {
    shorthand(
        value,
        &["Drop", "Retry", "DeadLetter", "Stop"],
        "FailurePolicy",
    )
}

/// A bare variant name (`MsgPack`, `Retry`) stands for the runtime enum's variant; any
/// other expression is used as written.
fn shorthand(value: &Expr, variants: &[&str], enum_name: &str) -> TokenStream {
    if let Expr::Path(path) = value
        && path.qself.is_none()
        && let Some(ident) = path.path.get_ident()
        && variants.contains(&ident.to_string().as_str())
    {
        let enum_ident = Ident::new(enum_name, ident.span());
        return quote!(::ruststream::runtime::#enum_ident::#ident);
    }
    quote!(#value)
}

#[cfg(test)]
mod tests {
    use super::edit_distance;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("workers", "workers"), 0);
        assert_eq!(edit_distance("worker", "workers"), 1);
        assert_eq!(edit_distance("wrokers", "workers"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
