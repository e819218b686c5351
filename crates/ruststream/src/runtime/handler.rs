//! [`Handler`]: what the runtime calls for each message.

use std::future::Future;
use std::marker::PhantomData;

use super::{FromMessage, IntoOutcome, Message, Outcome, ReplyBuffer};

/// Handles one delivered message and says how to settle it.
///
/// `#[subscriber]` implements it for your function, extracting each argument with
/// [`FromMessage`] (arguments may borrow from the message, such as [`Raw`](super::Raw)).
/// By hand, wrap a closure with [`handler_fn`] (owned arguments), or implement it
/// directly.
pub trait Handler: Send + Sync + 'static {
    /// Handles `message`; a reply, if any, is encoded into `reply`.
    fn call<'a>(
        &'a self,
        message: Message<'a>,
        reply: &'a mut ReplyBuffer,
    ) -> impl Future<Output = Outcome> + Send + 'a;
}

/// A closure or function used as a [`Handler`]; see [`handler_fn`].
pub struct HandlerFn<F, Args> {
    function: F,
    _args: PhantomData<fn(Args)>,
}

impl<F: Clone, Args> Clone for HandlerFn<F, Args> {
    fn clone(&self) -> Self {
        Self {
            function: self.function.clone(),
            _args: PhantomData,
        }
    }
}

impl<F, Args> std::fmt::Debug for HandlerFn<F, Args> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandlerFn")
    }
}

/// Makes a handler of an async function or closure whose arguments are owned extractors
/// (a decoded payload, [`State`](super::State)...), up to six of them.
///
/// ```
/// use ruststream::runtime::{handler_fn, Settle};
///
/// #[derive(serde::Deserialize)]
/// struct Order { id: u64 }
///
/// let handler = handler_fn(|order: Order| async move {
///     if order.id == 0 { Settle::Drop } else { Settle::Ack }
/// });
/// # let _ = handler;
/// ```
pub fn handler_fn<F, Args>(function: F) -> HandlerFn<F, Args>
where
    HandlerFn<F, Args>: Handler,
{
    HandlerFn {
        function,
        _args: PhantomData,
    }
}

macro_rules! impl_handler_fn {
    ($($arg:ident),*) => {
        impl<F, Fut, $($arg,)*> Handler for HandlerFn<F, ($($arg,)*)>
        where
            F: Fn($($arg),*) -> Fut + Send + Sync + 'static,
            Fut: Future + Send,
            Fut::Output: IntoOutcome,
            $($arg: for<'m> FromMessage<'m> + Send + 'static,)*
        {
            #[allow(non_snake_case, unused_variables)]
            fn call<'a>(
                &'a self,
                message: Message<'a>,
                reply: &'a mut ReplyBuffer,
            ) -> impl Future<Output = Outcome> + Send + 'a {
                // Extracted inside the future, as `#[subscriber]` does: a future holding
                // each extraction's `Result` (with its large error) costs a copy of it.
                async move {
                    $(let $arg = match $arg::from_message(&message) {
                        Ok(value) => value,
                        Err(rejection) => return Outcome::rejected(rejection),
                    };)*
                    (self.function)($($arg),*).await.into_outcome(reply)
                }
            }
        }
    };
}

impl_handler_fn!();
impl_handler_fn!(A1);
impl_handler_fn!(A1, A2);
impl_handler_fn!(A1, A2, A3);
impl_handler_fn!(A1, A2, A3, A4);
impl_handler_fn!(A1, A2, A3, A4, A5);
impl_handler_fn!(A1, A2, A3, A4, A5, A6);
