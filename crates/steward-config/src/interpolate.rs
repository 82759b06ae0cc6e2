//! `${VAR}` interpolation in string values (`$${` writes a literal `${`).

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InterpolationError {
    /// `${NAME}` names a variable that is not set.
    Unset(String),
    /// `${` without a closing `}`, or a name that is not `[A-Za-z_][A-Za-z0-9_]*`.
    Malformed(String),
}

/// Replaces every `${NAME}` with the variable's value from `env`.
pub(crate) fn interpolate(
    input: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolationError> {
    if !input.contains('$') {
        return Ok(input.to_owned());
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(literal) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = literal;
        } else if let Some(open) = after.strip_prefix("${") {
            let end = open
                .find('}')
                .ok_or_else(|| InterpolationError::Malformed(after.to_owned()))?;
            let name = &open[..end];
            if !is_var_name(name) {
                return Err(InterpolationError::Malformed(format!("${{{name}}}")));
            }
            let value = env(name).ok_or_else(|| InterpolationError::Unset(name.to_owned()))?;
            out.push_str(&value);
            rest = &open[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env(name: &str) -> Option<String> {
        (name == "PW").then(|| "s3cr$t".to_owned())
    }

    #[test]
    fn replaces_set_variables() {
        assert_eq!(interpolate("a${PW}b", &env), Ok("as3cr$tb".into()));
        assert_eq!(
            interpolate("$5 and $${PW}", &env),
            Ok("$5 and ${PW}".into())
        );
    }

    #[test]
    fn names_the_unset_variable() {
        assert_eq!(
            interpolate("x${NOPE}", &env),
            Err(InterpolationError::Unset("NOPE".into()))
        );
    }

    #[test]
    fn rejects_malformed_references() {
        assert!(matches!(
            interpolate("${PW", &env),
            Err(InterpolationError::Malformed(_))
        ));
        assert!(matches!(
            interpolate("${1X}", &env),
            Err(InterpolationError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn strings_without_references_are_unchanged(s in "[^$]*") {
            prop_assert_eq!(interpolate(&s, &env), Ok(s.clone()));
        }

        #[test]
        fn never_panics(s in ".*") {
            let _ = interpolate(&s, &env);
        }
    }
}
