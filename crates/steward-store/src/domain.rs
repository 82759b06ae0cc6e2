//! The one place a domain trait's methods are declared: [`domain_trait!`] writes the trait and
//! its [`Metered`](crate::Metered) forwarding from a single list of signatures, so adding a store
//! method is writing its signature once (plus its two backend bodies and its story).

/// Declares a domain trait of the store and implements it for [`Metered`](crate::Metered).
///
/// Every method is `async`, takes `&self`, and answers `Result<_, StoreError>`; the metered
/// forward times the call under the method's name and counts its errors by kind. Methods that
/// are not plain calls (signals, integrity checks) belong to [`Database`](crate::Database), which
/// is written by hand.
macro_rules! domain_trait {
    (
        $(#[$trait_meta:meta])*
        pub trait $trait_name:ident {
            $(
                $(#[$meta:meta])*
                async fn $method:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty;
            )*
        }
    ) => {
        $(#[$trait_meta])*
        #[::async_trait::async_trait]
        pub trait $trait_name: Send + Sync {
            $(
                $(#[$meta])*
                async fn $method(&self $(, $arg: $ty)*) -> $ret;
            )*
        }

        #[::async_trait::async_trait]
        impl<S: $trait_name + $crate::Database> $trait_name for $crate::Metered<S> {
            $(
                async fn $method(&self $(, $arg: $ty)*) -> $ret {
                    self.observe(stringify!($method), self.inner().$method($($arg),*))
                        .await
                }
            )*
        }
    };
}

pub(crate) use domain_trait;
