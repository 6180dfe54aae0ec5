//! The daemon's errors in the words of the command line: the API names its fields
//! (`memory_mib 99999 MiB is out of range`), a CLI user typed flags (`--memory 96g`).

use banger_api::ClientError;

use crate::cli::TypedMib;

/// Name the flag instead of the field when the daemon says which field was at fault, and
/// say `--memory` back in the units it was typed in (`memory`, when the user gave it).
pub fn rephrase(err: ClientError, memory: Option<&TypedMib>) -> ClientError {
    const FLAGS: [(&str, &str); 5] = [
        ("name", "--name"),
        ("image", "--image"),
        ("vcpu", "--vcpu"),
        ("memory_mib", "--memory"),
        ("disk", "--disk"),
    ];
    let ClientError::Api { status, mut error } = err else {
        return err;
    };
    let flag = FLAGS
        .iter()
        .find(|(field, _)| error.field.as_deref() == Some(field));
    if let Some((field, flag)) = flag
        && let Some(rest) = error.message.strip_prefix(&format!("{field} "))
    {
        let typed = match memory {
            Some(m) if *field == "memory_mib" => rest
                .strip_prefix(&format!("{} MiB ", m.mib))
                .map(|after| (m, after)),
            _ => None,
        };
        error.message = match typed {
            Some((m, after)) => format!("{flag} {} {after}", m.typed),
            None => format!("{flag} {rest}"),
        };
    }
    ClientError::Api { status, error }
}

#[cfg(test)]
mod tests {
    use super::*;
    use banger_api::ApiError;

    fn api(message: &str, field: Option<&str>) -> ClientError {
        ClientError::Api {
            status: 400,
            error: ApiError {
                kind: "invalid".into(),
                message: message.into(),
                hint: None,
                field: field.map(str::to_string),
            },
        }
    }

    #[test]
    fn field_names_become_flags() {
        let e = rephrase(
            api(
                "memory_mib 1 is out of range: use 128 to 4096 MiB",
                Some("memory_mib"),
            ),
            None,
        );
        assert_eq!(
            e.to_string(),
            "--memory 1 is out of range: use 128 to 4096 MiB"
        );
        // Messages that do not start with the field, or name no field, stay as they are.
        let e = rephrase(api("invalid VM name \"A\": no", Some("name")), None);
        assert_eq!(e.to_string(), "invalid VM name \"A\": no");
        let e = rephrase(api("memory_mib 1 is bad", None), None);
        assert_eq!(e.to_string(), "memory_mib 1 is bad");
    }

    #[test]
    fn memory_is_said_back_as_it_was_typed() {
        let typed = TypedMib {
            mib: 1 << 20,
            typed: "1T".into(),
        };
        let e = rephrase(
            api(
                "memory_mib 1048576 MiB is more than this host has 3911 MiB (3.8 GiB) of memory in all",
                Some("memory_mib"),
            ),
            Some(&typed),
        );
        assert_eq!(
            e.to_string(),
            "--memory 1T is more than this host has 3911 MiB (3.8 GiB) of memory in all"
        );
        // A message about another size keeps its MiB.
        let e = rephrase(
            api("memory_mib 512 MiB is odd", Some("memory_mib")),
            Some(&typed),
        );
        assert_eq!(e.to_string(), "--memory 512 MiB is odd");
    }
}
