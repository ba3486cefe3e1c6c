//! Mail over SMTP with TLS, against a real SMTP server the test starts on loopback: STARTTLS
//! (`EMAIL_USE_TLS`) and implicit TLS (`EMAIL_USE_SSL`), the server's certificate signed by a
//! private CA made in the test and trusted through `EMAIL_SSL_CAFILE`, the login of
//! `EMAIL_HOST_USER` sent only inside TLS. And the refusals: a certificate nobody vouches for,
//! one for another name, and a server that does not offer STARTTLS when TLS is required (no
//! login and no message go out in clear).

use std::sync::{Arc, Mutex};

use base64::Engine;
use restjwt::mail::{Mail, MailError, Mailer};
use restjwt::settings::{EmailBackend, Settings};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A private CA (its certificate as PEM) and a TLS acceptor whose certificate it signed, for
/// `127.0.0.1` and `localhost`.
struct Pki {
    ca_pem: String,
    acceptor: TlsAcceptor,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "restjwt test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("server key");
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("server params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &*ca).expect("server certificate");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server config");
    Pki {
        ca_pem: ca.pem(),
        acceptor: TlsAcceptor::from(Arc::new(config)),
    }
}

/// How the test's server speaks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Offer {
    /// Plain text first, STARTTLS offered; the login only once inside TLS.
    StartTls,
    /// TLS from the first byte (port 465 style).
    Implicit,
    /// Plain text only, and (carelessly) offering a login in clear.
    PlainOnly,
}

/// What the server was told, each line with whether it came inside TLS.
#[derive(Default, Debug)]
struct Seen {
    commands: Vec<(bool, String)>,
    messages: Vec<(bool, String)>,
}

impl Seen {
    fn auth(&self) -> Vec<&(bool, String)> {
        self.commands
            .iter()
            .filter(|(_, c)| c.to_ascii_uppercase().starts_with("AUTH"))
            .collect()
    }

    /// Commands that carry a login, an address or a message: none may go out in clear.
    fn sensitive_in_clear(&self) -> Vec<&String> {
        self.commands
            .iter()
            .filter(|(secure, c)| {
                let c = c.to_ascii_uppercase();
                !secure
                    && ["AUTH", "MAIL", "RCPT", "DATA"]
                        .iter()
                        .any(|v| c.starts_with(v))
            })
            .map(|(_, c)| c)
            .collect()
    }
}

/// A real SMTP server on `ip` and a free port; what it was told lands in the returned `Seen`.
async fn smtp_server(ip: &str, offer: Offer, acceptor: TlsAcceptor) -> (u16, Arc<Mutex<Seen>>) {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let kept = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (seen, acceptor) = (Arc::clone(&kept), acceptor.clone());
            tokio::spawn(async move {
                match offer {
                    Offer::Implicit => {
                        if let Ok(tls) = acceptor.accept(socket).await {
                            converse(tls, true, true, false, &seen).await;
                        }
                    }
                    Offer::StartTls => {
                        if let Some(plain) = converse(socket, true, false, true, &seen).await
                            && let Ok(tls) = acceptor.accept(plain).await
                        {
                            // No second greeting after STARTTLS: the client speaks first.
                            converse(tls, false, true, false, &seen).await;
                        }
                    }
                    Offer::PlainOnly => {
                        converse(socket, true, false, false, &seen).await;
                    }
                }
            });
        }
    });
    (port, seen)
}

/// One SMTP conversation; returns the stream when the client asked for STARTTLS and was told
/// to go ahead.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    greet: bool,
    secure: bool,
    offer_starttls: bool,
    seen: &Mutex<Seen>,
) -> Option<S> {
    let mut io = BufReader::new(stream);
    if greet && io.write_all(b"220 test ESMTP\r\n").await.is_err() {
        return None;
    }
    loop {
        let mut line = String::new();
        match io.read_line(&mut line).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let line = line.trim_end().to_owned();
        let upper = line.to_ascii_uppercase();
        seen.lock()
            .expect("lock")
            .commands
            .push((secure, line.clone()));
        let reply: &[u8] = if upper.starts_with("EHLO") {
            if offer_starttls && !secure {
                b"250-test\r\n250 STARTTLS\r\n"
            } else {
                b"250-test\r\n250 AUTH PLAIN LOGIN\r\n"
            }
        } else if upper.starts_with("STARTTLS") {
            if offer_starttls && !secure {
                io.write_all(b"220 2.0.0 go ahead\r\n").await.ok()?;
                io.flush().await.ok()?;
                return Some(io.into_inner());
            }
            b"502 5.5.1 not offered\r\n"
        } else if upper.starts_with("AUTH") {
            b"235 2.7.0 Authentication successful\r\n"
        } else if upper.starts_with("DATA") {
            io.write_all(b"354 go on\r\n").await.ok()?;
            let mut message = String::new();
            loop {
                let mut data = String::new();
                if io.read_line(&mut data).await.ok()? == 0 {
                    return None;
                }
                if data.trim_end() == "." {
                    break;
                }
                message.push_str(&data);
            }
            seen.lock().expect("lock").messages.push((secure, message));
            b"250 queued\r\n"
        } else if upper.starts_with("QUIT") {
            let _ = io.write_all(b"221 bye\r\n").await;
            return None;
        } else {
            b"250 ok\r\n"
        };
        io.write_all(reply).await.ok()?;
        io.flush().await.ok()?;
    }
}

fn mail() -> Mail {
    Mail {
        to: "dave@example.com".into(),
        subject: "[example.com] Password Reset Email".into(),
        body: "Click: http://example.com/password-reset/confirm/1/abc-def/\n".into(),
    }
}

/// SMTP settings for the test's server, with a login, and the CA file `ca` when given.
fn settings(port: u16, tls: bool, ssl: bool, ca: Option<&std::path::Path>) -> Settings {
    Settings {
        email_backend: EmailBackend::Smtp,
        email_host: "127.0.0.1".into(),
        email_port: port,
        email_use_tls: tls,
        email_use_ssl: ssl,
        email_ssl_cafile: ca.map(|p| p.display().to_string()),
        email_host_user: "mailer".into(),
        email_host_password: Some("mail-secret".into()),
        email_timeout: std::time::Duration::from_secs(5),
        default_from_email: "accounts@example.com".into(),
        ..Settings::default()
    }
}

fn write_ca(dir: &tempfile::TempDir, pki: &Pki) -> std::path::PathBuf {
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, &pki.ca_pem).expect("CA file");
    path
}

/// The message arrived inside TLS, the login too (PLAIN with `EMAIL_HOST_USER`'s name and
/// password), and nothing sensitive went out in clear.
fn assert_sent_inside_tls(seen: &Seen) {
    assert_eq!(seen.messages.len(), 1, "{seen:?}");
    assert!(seen.messages[0].0, "the message inside TLS");
    assert!(seen.messages[0].1.contains("To: dave@example.com"));
    let auth = seen.auth();
    assert_eq!(auth.len(), 1, "{seen:?}");
    assert!(auth[0].0, "the login inside TLS");
    let plain = auth[0]
        .1
        .split_whitespace()
        .nth(2)
        .expect("AUTH PLAIN <credentials>");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(plain)
        .expect("base64");
    assert_eq!(decoded, b"\0mailer\0mail-secret");
    assert!(seen.sensitive_in_clear().is_empty(), "{seen:?}");
}

#[tokio::test]
async fn starttls_to_a_server_with_a_private_ca() {
    let pki = pki();
    let dir = tempfile::tempdir().expect("dir");
    let ca = write_ca(&dir, &pki);
    let (port, seen) = smtp_server("127.0.0.1", Offer::StartTls, pki.acceptor.clone()).await;
    let mailer = Mailer::from_settings(&settings(port, true, false, Some(&ca))).expect("mailer");
    mailer.send_now(&mail()).await.expect("sent");
    let seen = seen.lock().expect("lock");
    assert_sent_inside_tls(&seen);
    // Only the greeting's EHLO and STARTTLS in clear.
    let in_clear: Vec<&str> = seen
        .commands
        .iter()
        .filter(|(secure, _)| !secure)
        .map(|(_, c)| c.as_str())
        .collect();
    assert_eq!(in_clear.len(), 2, "{in_clear:?}");
    assert!(
        in_clear[0].starts_with("EHLO") && in_clear[1] == "STARTTLS",
        "{in_clear:?}"
    );
}

#[tokio::test]
async fn implicit_tls_to_a_server_with_a_private_ca() {
    let pki = pki();
    let dir = tempfile::tempdir().expect("dir");
    let ca = write_ca(&dir, &pki);
    let (port, seen) = smtp_server("127.0.0.1", Offer::Implicit, pki.acceptor.clone()).await;
    let mailer = Mailer::from_settings(&settings(port, false, true, Some(&ca))).expect("mailer");
    mailer.send_now(&mail()).await.expect("sent");
    let seen = seen.lock().expect("lock");
    assert_sent_inside_tls(&seen);
    assert!(seen.commands.iter().all(|(secure, _)| *secure), "{seen:?}");
}

/// Mail queued from a request (`Mailer::send`) goes the same way, in the background.
#[tokio::test]
async fn background_mail_goes_over_starttls_too() {
    let pki = pki();
    let dir = tempfile::tempdir().expect("dir");
    let ca = write_ca(&dir, &pki);
    let (port, seen) = smtp_server("127.0.0.1", Offer::StartTls, pki.acceptor.clone()).await;
    let mailer = Mailer::from_settings(&settings(port, true, false, Some(&ca))).expect("mailer");
    mailer.send(mail());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen.lock().expect("lock").messages.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_sent_inside_tls(&seen.lock().expect("lock"));
}

/// Without `EMAIL_SSL_CAFILE` the private CA is nobody the system trusts: refused, before the
/// login or the message.
#[tokio::test]
async fn a_certificate_nobody_vouches_for_is_refused() {
    let pki = pki();
    for (offer, tls, ssl) in [
        (Offer::StartTls, true, false),
        (Offer::Implicit, false, true),
    ] {
        let (port, seen) = smtp_server("127.0.0.1", offer, pki.acceptor.clone()).await;
        let mailer = Mailer::from_settings(&settings(port, tls, ssl, None)).expect("mailer");
        let error = mailer.send_now(&mail()).await.expect_err("refused");
        assert!(error.to_lowercase().contains("certificate"), "{error}");
        let seen = seen.lock().expect("lock");
        assert!(
            seen.auth().is_empty() && seen.messages.is_empty(),
            "{seen:?}"
        );
    }
}

/// The certificate names 127.0.0.1 and localhost: a server reached as 127.0.0.2 is refused
/// even with the CA trusted.
#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let pki = pki();
    let dir = tempfile::tempdir().expect("dir");
    let ca = write_ca(&dir, &pki);
    let (port, seen) = smtp_server("127.0.0.2", Offer::Implicit, pki.acceptor.clone()).await;
    let mut settings = settings(port, false, true, Some(&ca));
    settings.email_host = "127.0.0.2".into();
    let mailer = Mailer::from_settings(&settings).expect("mailer");
    let error = mailer.send_now(&mail()).await.expect_err("refused");
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    let seen = seen.lock().expect("lock");
    assert!(
        seen.auth().is_empty() && seen.messages.is_empty(),
        "{seen:?}"
    );
}

/// `EMAIL_USE_TLS` requires STARTTLS: a server that does not offer it (but offers a login in
/// clear) gets neither the login nor the message.
#[tokio::test]
async fn tls_required_refuses_a_server_without_starttls() {
    let pki = pki();
    let dir = tempfile::tempdir().expect("dir");
    let ca = write_ca(&dir, &pki);
    let (port, seen) = smtp_server("127.0.0.1", Offer::PlainOnly, pki.acceptor.clone()).await;
    let mailer = Mailer::from_settings(&settings(port, true, false, Some(&ca))).expect("mailer");
    mailer.send_now(&mail()).await.expect_err("refused");
    let seen = seen.lock().expect("lock");
    assert!(seen.sensitive_in_clear().is_empty(), "{seen:?}");
    assert!(seen.messages.is_empty(), "{seen:?}");
}

/// A CA file that cannot be used stops the mailer from being built (`restjwt serve` then does
/// not start), and a CA file without TLS is a settings error.
#[test]
fn an_unusable_ca_file_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    let not_pem = dir.path().join("key.pem");
    std::fs::write(
        &not_pem,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("file");
    let missing = dir.path().join("missing.pem");
    for path in [&not_pem, &missing] {
        let error =
            Mailer::from_settings(&settings(25, true, false, Some(path))).expect_err("refused");
        assert!(matches!(error, MailError::CaFile { .. }), "{error}");
    }
    let ca = not_pem.display().to_string();
    let error = Settings::load(
        None,
        [
            ("RESTJWT_EMAIL_BACKEND".to_owned(), "smtp".to_owned()),
            ("RESTJWT_EMAIL_SSL_CAFILE".to_owned(), ca),
        ],
    )
    .expect_err("refused");
    assert!(error.to_string().contains("EMAIL_SSL_CAFILE"), "{error}");
}
