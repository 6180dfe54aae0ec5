//! One convention for error chains across banger: a library error's message says what failed
//! on which object and what to do; its cause is its `#[source]`, never repeated in the
//! message. The top-level reporter prints the chain once, with [`error_chain`].

/// `err` and all its causes, outermost first, joined by `": "`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // A wrapper that already embeds its cause's text would print it twice.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Whether `err` or one of its causes is a full disk or an exceeded quota (ENOSPC,
/// EDQUOT) — the cause that must reach the user as such, never as a network or format error.
pub fn is_storage_full(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && (matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ) || matches!(io.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)))
        {
            return true;
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write the work disk /s/vms/a/work.ext4")]
    struct Outer {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn prints_each_cause_once() {
        let err = Outer {
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert_eq!(
            error_chain(&err),
            "cannot write the work disk /s/vms/a/work.ext4: No space left on device (os error 28)"
        );
        let plain = std::io::Error::other("x");
        assert_eq!(error_chain(&plain), "x");
    }

    #[test]
    fn a_full_disk_is_found_anywhere_in_the_chain() {
        let err = Outer {
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert!(is_storage_full(&err));
        let err = Outer {
            source: std::io::Error::from_raw_os_error(libc::EIO),
        };
        assert!(!is_storage_full(&err));
    }
}
