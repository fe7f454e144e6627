//! containerd's topic rules: `/` followed by `/`-separated identifiers,
//! e.g. `/containers/create`.

use berth_core::{identifiers, Error, Result};

/// Validates a topic the way containerd's exchange does.
pub fn validate_topic(topic: &str) -> Result<()> {
    if topic.is_empty() {
        return Err(
            Error::invalid_argument("must not be empty: invalid argument").context("topic"),
        );
    }
    let Some(rest) = topic.strip_prefix('/') else {
        return Err(Error::invalid_argument(format!(
            "topic {topic:?} must start with '/': invalid argument"
        )));
    };
    for component in rest.split('/') {
        identifiers::validate(component)
            .map_err(|e| e.context(format!("failed validation on component {component:?}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::ErrorKind;

    #[test]
    fn well_formed_topics_pass() {
        validate_topic("/containers/create").expect("valid");
        validate_topic("/tasks/exec-added").expect("valid");
    }

    #[test]
    fn malformed_topics_are_invalid_argument() {
        for topic in ["", "containers/create"] {
            let err = validate_topic(topic).expect_err(topic);
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{topic}");
        }
    }
}
