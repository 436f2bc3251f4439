//! What kind of failure an AWS call met, decided once from the SDK's error
//! (its service error code, or the credentials error among its causes), so
//! that the advice given for it is chosen by kind, never by searching text.

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};

/// The kind of an AWS call's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// No credentials, or ones AWS does not accept (expired, unknown key,
    /// bad signature): the caller's identity is the problem.
    Credentials,
    /// The identity is known but may not make the call.
    AccessDenied,
    /// The resource does not exist.
    NotFound,
    /// AWS throttled the call.
    Throttled,
    /// No service answer: connection, timeout, or a request never sent.
    Transport,
    /// Any other service error.
    Other,
}

/// Service error codes of rejected credentials (STS, IAM, EKS).
const CREDENTIAL_CODES: &[&str] = &[
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "MissingAuthenticationToken",
    "IncompleteSignature",
    "InvalidSignatureException",
];

impl AwsErrorKind {
    /// The kind of `error` (an `SdkError` of any operation).
    pub fn of<E>(error: &E) -> AwsErrorKind
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match error.code() {
            Some(code) => Self::of_code(code),
            None => {
                let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
                while let Some(e) = cause {
                    if e.is::<aws_credential_types::provider::error::CredentialsError>() {
                        return AwsErrorKind::Credentials;
                    }
                    cause = e.source();
                }
                AwsErrorKind::Transport
            }
        }
    }

    /// What the person running `apply` can do about a failed call, as a
    /// sentence to append to the error (empty when only the error's own
    /// text can say).
    pub fn apply_advice(self) -> &'static str {
        match self {
            AwsErrorKind::Credentials => {
                "; AWS does not accept the credentials apply runs with: give its ServiceAccount \
                 an IAM role (IRSA annotation or Pod Identity association) or configure the \
                 environment's credentials, then re-run"
            }
            AwsErrorKind::AccessDenied => {
                "; the identity that runs apply (or diff) may not make this call: attach the IAM \
                 policy `runner-identity bootstrap` prints for this configuration; if it is \
                 attached, an SCP or the identity's permissions boundary denies the call"
            }
            AwsErrorKind::NotFound => {
                "; AWS has no such entity: check that the permissions boundary and managed \
                 policy ARNs the configuration names exist in the account"
            }
            AwsErrorKind::Transport => {
                "; no answer from AWS could be read: check the network path (AWS_ENDPOINT_URL, \
                 AWS_REGION, proxy, VPC endpoints)"
            }
            AwsErrorKind::Throttled => "; AWS throttled the calls: re-run later",
            AwsErrorKind::Other => "",
        }
    }

    /// The kind of a service error code.
    pub fn of_code(code: &str) -> AwsErrorKind {
        match code {
            c if CREDENTIAL_CODES.contains(&c) => AwsErrorKind::Credentials,
            "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => {
                AwsErrorKind::AccessDenied
            }
            "NoSuchEntity" | "NoSuchEntityException" | "ResourceNotFoundException" => {
                AwsErrorKind::NotFound
            }
            "Throttling" | "ThrottlingException" | "TooManyRequestsException" => {
                AwsErrorKind::Throttled
            }
            _ => AwsErrorKind::Other,
        }
    }
}

/// A call's answer, `None` when the operation's own error says its resource
/// does not exist (`absent`, the modelled error's check: a read of a role or
/// policy that may be absent), the SDK error otherwise.
pub(crate) fn found<T, E, R>(
    result: Result<T, SdkError<E, R>>,
    absent: impl FnOnce(&E) -> bool,
) -> Result<Option<T>, SdkError<E, R>> {
    match result {
        Ok(answer) => Ok(Some(answer)),
        Err(e) if e.as_service_error().is_some_and(absent) => Ok(None),
        Err(e) => Err(e),
    }
}

/// An SDK error as `Code: message` (the SDK never puts credentials in
/// errors); a transport error as its cause chain.
pub(crate) fn error_text<E: ProvideErrorMetadata + std::error::Error>(e: &E) -> String {
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => crate::cause_chain(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_token_is_a_credentials_failure_not_a_missing_permission() {
        // Its message ("The security token included in the request is
        // expired") never says "credentials".
        assert_eq!(
            AwsErrorKind::of_code("ExpiredToken"),
            AwsErrorKind::Credentials
        );
        assert_eq!(
            AwsErrorKind::of_code("InvalidClientTokenId"),
            AwsErrorKind::Credentials
        );
        assert_eq!(
            AwsErrorKind::of_code("AccessDenied"),
            AwsErrorKind::AccessDenied
        );
        assert_eq!(
            AwsErrorKind::of_code("NoSuchEntity"),
            AwsErrorKind::NotFound
        );
        assert_eq!(AwsErrorKind::of_code("ServiceFailure"), AwsErrorKind::Other);
    }
}
