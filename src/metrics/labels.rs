//! The closed sets our label values come from, as types: a label value that is not one of
//! these cannot be exported. Each encodes as its `as_str()`, byte for byte the text the
//! exposition has always had (prometheus-client's `#[derive(EncodeLabelValue)]` would write
//! the Rust variant name, `V311` for `3.1.1`).

/// `EncodeLabelValue`, `Display`, `Serialize` and comparison with text for a type with
/// `fn as_str(self) -> &'static str`.
macro_rules! label_value {
    ($($t:ty),* $(,)?) => {$(
        impl ::prometheus_client::encoding::EncodeLabelValue for $t {
            fn encode(
                &self,
                encoder: &mut ::prometheus_client::encoding::LabelValueEncoder,
            ) -> ::std::result::Result<(), ::std::fmt::Error> {
                ::std::fmt::Write::write_str(encoder, self.as_str())
            }
        }
        impl ::std::fmt::Display for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
        impl PartialEq<String> for $t {
            fn eq(&self, other: &String) -> bool {
                self.as_str() == other
            }
        }
        /// As its label value (the JSON of `mqtt-sentinel probe --json`).
        impl ::serde::Serialize for $t {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    )*};
}
pub(crate) use label_value;

/// An enum of label values: each variant with its text, `ALL`, `as_str` and [`label_value`].
macro_rules! closed_set {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $v:ident => $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $v,)* }
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v,)*];
            /// The label value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s,)* }
            }
        }
        label_value!($name);
    };
}

closed_set! {
    /// The `protocol` label of `mqtt_connection_info`: the MQTT version a session speaks
    /// (`protocol: auto` is a setting, never a session's version).
    pub enum MqttVersion {
        V5 => "5",
        V311 => "3.1.1",
    }
}

closed_set! {
    /// The `result` of `mqtt_connects_total`, the `reason` of `mqtt_disconnects_total`,
    /// `mqtt_probe_errors_total`, `mqtt_probe_ignored_total` and `/probe`'s `probe_mqtt_reason`:
    /// MQTT v5 reason-code names (v3.1.1 return codes mapped onto them, see
    /// `mqtt::reason::reason_name`) and a small closed set for what MQTT cannot report. The
    /// README's "Connect failure reasons" lists the transport ones
    /// (`mqtt::reason::CONNECT_TRANSPORT_LABELS`).
    pub enum Reason {
        Success => "success",
        // --- MQTT v5 reason codes
        UnspecifiedError => "unspecified_error",
        MalformedPacket => "malformed_packet",
        ProtocolError => "protocol_error",
        ImplementationSpecificError => "implementation_specific_error",
        UnsupportedProtocolVersion => "unsupported_protocol_version",
        ClientIdentifierNotValid => "client_identifier_not_valid",
        BadUsernameOrPassword => "bad_username_or_password",
        /// Also the v3.1.1 SUBACK failure (0x80), which carries no reason.
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
        /// Also: a probe's QoS is above what the broker supports.
        QosNotSupported => "qos_not_supported",
        UseAnotherServer => "use_another_server",
        ServerMoved => "server_moved",
        ConnectionRateExceeded => "connection_rate_exceeded",
        MaximumConnectTime => "maximum_connect_time",
        // --- transport outcomes of a connect (from the first step that failed, see
        // `mqtt::reason::diagnose`)
        /// No answer in time: the connect timeout passed, or a step of the diagnosis did not
        /// finish.
        Timeout => "timeout",
        /// The host answered the TCP SYN with a reset: nothing listens on the port.
        Refused => "refused",
        /// The host name does not resolve (or resolves to no address).
        Dns => "dns",
        /// No route to the host or network, the address cannot be used, or a local firewall
        /// refused.
        Unreachable => "unreachable",
        /// The TLS handshake failed for a reason other than the server certificate: the port
        /// does not speak TLS, no common version or cipher, the server refused our client
        /// certificate or closed.
        TlsHandshake => "tls_handshake",
        /// The server certificate did not verify: unknown CA, expired, or not issued for the
        /// host.
        TlsCertificate => "tls_certificate",
        /// This build of Paho has no TLS (never with the shipped builds).
        TlsNotSupported => "tls_not_supported",
        /// The WebSocket upgrade got no HTTP answer (a non-WebSocket port, or closed).
        WebsocketUpgrade => "websocket_upgrade",
        /// The transport (TCP, TLS, WebSocket) came up but the broker closed the connection
        /// before its CONNACK: a broker that drops a CONNECT it does not accept (RabbitMQ 3.10
        /// for MQTT 5, a TLS listener spoken to in plain text, a connection limit).
        ConnectionClosed => "connection_closed",
        // --- a WebSocket upgrade answered with an HTTP status instead of 101
        // (`mqtt::reason::WEBSOCKET_STATUSES`)
        WebsocketHttp200 => "websocket_http_200",
        WebsocketHttp301 => "websocket_http_301",
        WebsocketHttp302 => "websocket_http_302",
        WebsocketHttp307 => "websocket_http_307",
        WebsocketHttp308 => "websocket_http_308",
        WebsocketHttp400 => "websocket_http_400",
        WebsocketHttp401 => "websocket_http_401",
        WebsocketHttp403 => "websocket_http_403",
        WebsocketHttp404 => "websocket_http_404",
        WebsocketHttp405 => "websocket_http_405",
        WebsocketHttp426 => "websocket_http_426",
        WebsocketHttp429 => "websocket_http_429",
        WebsocketHttp500 => "websocket_http_500",
        WebsocketHttp502 => "websocket_http_502",
        WebsocketHttp503 => "websocket_http_503",
        WebsocketHttp504 => "websocket_http_504",
        /// A refused WebSocket upgrade whose status is not one of the above.
        WebsocketHttpOther => "websocket_http_other",
        // --- other operations and probes
        /// A failed operation other than a connect that names no cause (a subscribe or
        /// publish token failing without a reason code). Never the result of a connect.
        Error => "error",
        /// A round-trip probe's message did not come back although the broker kept answering
        /// (acknowledgements, `$SYS`, the liveness question): dropped by an ACL, a size or
        /// queue limit, which MQTT 3.1.1 and QoS 0 cannot report.
        NotDelivered => "not_delivered",
        /// A scheduled probe found its session down.
        NotConnected => "not_connected",
        /// A bridge probe's message did not arrive while the receiving broker's watching
        /// session was not subscribed to the remote topic (that broker down or just
        /// reconnecting): the run says nothing about the bridge.
        RemoteNotConnected => "remote_not_connected",
        /// A retained probe's fresh subscriber received a value other than the one published.
        Mismatch => "mismatch",
        /// A session probe reconnected to its persistent session and the broker answered
        /// CONNACK with session present 0: it did not keep the session (MQTT 5.0 §3.2.2.1.1,
        /// 3.1.1 §3.2.2.2).
        SessionNotPresent => "session_not_present",
        /// A session probe received the message queued for it more than once.
        Duplicate => "duplicate",
        /// A will probe's client disconnected cleanly and its will was published anyway
        /// (MQTT 5.0 §3.1.2.5, 3.1.1 §3.1.2.5: a DISCONNECT deletes the will).
        UnexpectedWill => "unexpected_will",
        // --- how a session ended without a v5 DISCONNECT reason
        /// The connection dropped without a server DISCONNECT.
        ConnectionLost => "connection_lost",
        /// The broker stopped answering (see `mqtt`'s liveness rule).
        Unresponsive => "unresponsive",
        // --- messages on a probe topic that were not counted
        /// After the probe's timeout.
        Late => "late",
        /// Another sender or run.
        Foreign => "foreign",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_distinct_prometheus_label_values() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.as_str()), "{r} twice");
            assert!(
                r.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{r}"
            );
        }
    }
}

closed_set! {
    /// The `result` of `mqtt_sentinel_notifications_total`: what became of one notification.
    pub enum NotificationResult {
        /// The receiver answered 2xx.
        Success => "success",
        /// Refused (an HTTP status other than 2xx, 429 or 5xx) or still failing after
        /// `max_attempts` attempts (transport errors, 429 and 5xx are retried).
        Failure => "failure",
        /// The receiver's queue was full (`notify.queue_capacity`): never attempted.
        Dropped => "dropped",
    }
}
