//! Bounded label values for connection results: MQTT v5 reason-code names (v3.1.1 return codes
//! mapped onto them) or a small closed set for transport failures.

use paho_mqtt::{ConnectReturnCode, ReasonCode};

/// The closed set of non-MQTT outcomes.
pub const TIMEOUT: &str = "timeout";
pub const REFUSED: &str = "refused";
pub const TLS: &str = "tls";
pub const DNS: &str = "dns";
pub const ERROR: &str = "error";
/// The connection was open and closed before a CONNACK came back.
pub const CONNECTION_CLOSED: &str = "connection_closed";
pub const SUCCESS: &str = "success";
/// Also the v3.1.1 SUBACK failure (0x80), which carries no reason.
pub const NOT_AUTHORIZED: &str = "not_authorized";
/// A round-trip probe's message did not come back although the broker kept answering
/// (acknowledgements, `$SYS`, the liveness question): dropped by an ACL, a size or queue
/// limit, which MQTT 3.1.1 and QoS 0 cannot report.
pub const NOT_DELIVERED: &str = "not_delivered";
/// A scheduled probe found its session down.
pub const NOT_CONNECTED: &str = "not_connected";
/// A probe's QoS is above what the broker supports.
pub const QOS_NOT_SUPPORTED: &str = "qos_not_supported";

/// snake_case name of a v5 reason code, as used in `result`/`reason` labels.
pub fn reason_name(rc: ReasonCode) -> &'static str {
    use ReasonCode::*;
    match rc {
        Success => SUCCESS,
        UnspecifiedError => "unspecified_error",
        MalformedPacket => "malformed_packet",
        ProtocolError => "protocol_error",
        ImplementationSpecificError => "implementation_specific_error",
        UnsupportedProtocolVersion => "unsupported_protocol_version",
        ClientIdentifierNotValid => "client_identifier_not_valid",
        BadUserNameOrPassword => "bad_username_or_password",
        NotAuthorized => "not_authorized",
        ServerUnavailable => "server_unavailable",
        ServerBusy => "server_busy",
        Banned => "banned",
        ServerShuttingDown => "server_shutting_down",
        BadAuthenticationMethod => "bad_authentication_method",
        KeepAliveTimeout => "keep_alive_timeout",
        SessionTakenOver => "session_taken_over",
        TopicFilterInvalid => "topic_filter_invalid",
        TopicNameInvalid => "topic_name_invalid",
        PacketTooLarge => "packet_too_large",
        MessageRateTooHigh => "message_rate_too_high",
        QuotaExceeded => "quota_exceeded",
        AdministrativeAction => "administrative_action",
        PayloadFormatInvalid => "payload_format_invalid",
        RetainNotSupported => "retain_not_supported",
        QosNotSupported => "qos_not_supported",
        UseAnotherServer => "use_another_server",
        ServerMoved => "server_moved",
        ConnectionRateExceeded => "connection_rate_exceeded",
        MaximumConnectTime => "maximum_connect_time",
        _ => ERROR,
    }
}

/// v3.1.1 CONNACK return codes, named like their v5 counterparts.
pub fn return_code_name(rc: ConnectReturnCode) -> &'static str {
    match rc {
        ConnectReturnCode::Accepted => SUCCESS,
        ConnectReturnCode::UnacceptableProtocolVersion => "unsupported_protocol_version",
        ConnectReturnCode::IdentifierRejected => "client_identifier_not_valid",
        ConnectReturnCode::ServerUnavailable => "server_unavailable",
        ConnectReturnCode::BadUserNameOrPassword => "bad_username_or_password",
        ConnectReturnCode::NotAuthorized => "not_authorized",
    }
}

/// A label decided from the error alone, or `None` when the transport must be diagnosed
/// (Paho reports refused ports, failed handshakes and unknown hosts alike).
pub fn from_error(err: &paho_mqtt::Error) -> Option<&'static str> {
    use paho_mqtt::Error as E;
    match err {
        E::ReasonCode(rc, _) => Some(reason_name(*rc)),
        E::ConnectReturn(rc) => Some(return_code_name(*rc)),
        E::TcpConnectTimeout | E::Timeout => Some(TIMEOUT),
        E::SslNotSupported => Some(TLS),
        _ => None,
    }
}

/// The label for any failed Paho operation: the decisive one, else `error`.
pub fn label(err: &paho_mqtt::Error) -> &'static str {
    from_error(err).unwrap_or(ERROR)
}

/// The label for a failed connect: from the error when it says enough, otherwise by looking
/// at the transport ourselves (Paho reports a refused port, a failed TLS handshake and an
/// unknown host alike as "TCP/TLS connect failure"). Runs on the failure path only; each
/// look is bounded by 2 s.
pub async fn diagnose(
    err: &paho_mqtt::Error,
    elapsed: std::time::Duration,
    url: &crate::config::BrokerUrl,
    connect_timeout: std::time::Duration,
) -> &'static str {
    use std::time::Duration;
    if let Some(label) = from_error(err) {
        return label;
    }
    if elapsed + Duration::from_millis(100) >= connect_timeout {
        return TIMEOUT;
    }
    let step = Duration::from_secs(2);
    let addrs =
        match tokio::time::timeout(step, tokio::net::lookup_host((url.host.as_str(), url.port)))
            .await
        {
            Ok(Ok(a)) => a.collect::<Vec<_>>(),
            Ok(Err(_)) => return DNS,
            Err(_) => return TIMEOUT,
        };
    let Some(addr) = addrs.first() else {
        return DNS;
    };
    match tokio::time::timeout(step, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) if url.is_tls() => TLS,
        Ok(Ok(_)) => ERROR,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => REFUSED,
        Ok(Err(_)) => ERROR,
        Err(_) => TIMEOUT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            reason_name(ReasonCode::BadUserNameOrPassword),
            "bad_username_or_password"
        );
        assert_eq!(reason_name(ReasonCode::QuotaExceeded), "quota_exceeded");
        assert_eq!(
            return_code_name(ConnectReturnCode::NotAuthorized),
            "not_authorized"
        );
        assert_eq!(
            from_error(&paho_mqtt::Error::ConnectReturn(
                ConnectReturnCode::BadUserNameOrPassword
            )),
            Some("bad_username_or_password")
        );
        assert_eq!(from_error(&paho_mqtt::Error::TcpTlsConnectFailure), None);
    }
}
