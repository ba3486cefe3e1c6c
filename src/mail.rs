//! Mail, sent off the request path: Django's backends (`EMAIL_BACKEND` = `console`, `file`,
//! `smtp`) with Django's setting names, on lettre, and the account mails' templates, which an
//! app can replace (`EMAIL_TEMPLATE_DIR`).
//!
//! [`Mailer::send`] returns at once: the message is built, then handed to a task that writes
//! or sends it, so a slow or dead mail server never holds a request. At most
//! [`MAX_PENDING`] messages wait at a time; past that a message is dropped with a warning
//! (a flood of resets must not grow memory without bound). Failures go to the log, never to
//! the client (a reset for an unknown address and one whose mail failed answer alike).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lettre::message::header::ContentTransferEncoding;
use lettre::message::{Mailbox, SinglePart, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::Semaphore;

use crate::settings::{EmailBackend, Settings};

/// How many messages may wait to be sent before new ones are dropped.
pub const MAX_PENDING: usize = 1000;

/// The mail settings are not usable.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// An address (`DEFAULT_FROM_EMAIL`, a recipient) does not parse.
    #[error("not a mail address: {0:?}")]
    BadAddress(String),
    /// The SMTP settings do not make a transport.
    #[error("cannot set up SMTP to {host}: {message}")]
    Smtp {
        /// `EMAIL_HOST`.
        host: String,
        /// lettre's message.
        message: String,
    },
    /// `EMAIL_SSL_CAFILE` cannot be read or holds no PEM certificate.
    #[error("cannot use EMAIL_SSL_CAFILE {path}: {message}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// A template file in `EMAIL_TEMPLATE_DIR` cannot be read.
    #[error("cannot read mail template {path}: {source}")]
    Template {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The message could not be built (a header value lettre refuses).
    #[error("cannot build the message: {0}")]
    Build(String),
}

/// One plain-text message.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The text, UTF-8.
    pub body: String,
}

impl std::fmt::Debug for Mail {
    /// The body holds reset links and confirmation keys: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

enum Backend {
    Console,
    File(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// Sends [`Mail`] through the configured backend, in the background.
#[derive(Clone)]
pub struct Mailer {
    backend: Arc<Backend>,
    from: Mailbox,
    pending: Arc<Semaphore>,
    counter: Arc<AtomicU64>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &*self.backend {
            Backend::Console => "console",
            Backend::File(_) => "file",
            Backend::Smtp(_) => "smtp",
        };
        f.debug_struct("Mailer")
            .field("backend", &backend)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// The mailer the settings describe. SMTP connects lazily (at the first message), so a
    /// mail server that is down does not stop the start.
    ///
    /// Fails with [`MailError::BadAddress`] for a `DEFAULT_FROM_EMAIL` that does not parse and
    /// [`MailError::Smtp`] for an `EMAIL_HOST` lettre cannot use.
    pub fn from_settings(settings: &Settings) -> Result<Self, MailError> {
        let from: Mailbox = settings
            .default_from_email
            .parse()
            .map_err(|_| MailError::BadAddress(settings.default_from_email.clone()))?;
        let backend = match settings.email_backend {
            EmailBackend::Console => Backend::Console,
            EmailBackend::File => Backend::File(PathBuf::from(
                settings.email_file_path.clone().unwrap_or_default(),
            )),
            EmailBackend::Smtp => Backend::Smtp(smtp_transport(settings)?),
        };
        Ok(Self {
            backend: Arc::new(backend),
            from,
            pending: Arc::new(Semaphore::new(MAX_PENDING)),
            counter: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Queues `mail` and returns at once; must be called within a Tokio runtime. The message
    /// is written or sent by a task of its own; a failure is logged.
    pub fn send(&self, mail: Mail) {
        let Ok(permit) = Arc::clone(&self.pending).try_acquire_owned() else {
            tracing::warn!(to = %mail.to, "mail queue full: message dropped");
            return;
        };
        let message = match self.build(&mail) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, to = %mail.to, "mail not sent");
                return;
            }
        };
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(error) = this.deliver(message).await {
                tracing::warn!(%error, to = %mail.to, "mail not sent");
            }
            drop(permit);
        });
    }

    /// Sends `mail` now and waits for the backend's answer (the CLI's test mail, and tests).
    pub async fn send_now(&self, mail: &Mail) -> Result<(), String> {
        let message = self.build(mail).map_err(|e| e.to_string())?;
        self.deliver(message).await
    }

    fn build(&self, mail: &Mail) -> Result<Message, MailError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|_| MailError::BadAddress(mail.to.clone()))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    // As Django sends it: links wrapped with soft line breaks, decodable.
                    .header(ContentTransferEncoding::QuotedPrintable)
                    .body(mail.body.clone()),
            )
            .map_err(|e| MailError::Build(e.to_string()))
    }

    async fn deliver(&self, message: Message) -> Result<(), String> {
        match &*self.backend {
            Backend::Console => {
                let mut text = message.formatted();
                text.extend_from_slice(format!("\n{}\n", "-".repeat(79)).as_bytes());
                // Django's console backend: the message and a line of dashes, on stdout.
                tokio::task::spawn_blocking(move || {
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    out.write_all(&text).and_then(|()| out.flush())
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
            }
            Backend::File(dir) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| format!("{}: {e}", dir.display()))?;
                // Names sort in sending order: time, then a counter within this process.
                let n = self.counter.fetch_add(1, Ordering::Relaxed);
                let name = format!(
                    "{}-{}-{n:06}.eml",
                    chrono::Utc::now().format("%Y%m%d-%H%M%S%.6f"),
                    std::process::id()
                );
                let path = dir.join(name);
                let partial = path.with_extension("part");
                // Written aside, then renamed: a reader never sees half a message.
                tokio::fs::write(&partial, message.formatted())
                    .await
                    .map_err(|e| format!("{}: {e}", partial.display()))?;
                tokio::fs::rename(&partial, &path)
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
            Backend::Smtp(transport) => transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        }
    }
}

/// The SMTP transport: implicit TLS (`EMAIL_USE_SSL`), STARTTLS that must succeed before
/// anything else is sent (`EMAIL_USE_TLS`: a server that does not offer it gets neither the
/// login nor the message), or plain text. Certificates are checked against the system's roots
/// and `EMAIL_SSL_CAFILE`'s, for the name `EMAIL_HOST`.
fn smtp_transport(settings: &Settings) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let host = settings.email_host.as_str();
    let error = |e: lettre::transport::smtp::Error| MailError::Smtp {
        host: host.to_owned(),
        message: e.to_string(),
    };
    let tls = if settings.email_use_ssl || settings.email_use_tls {
        let mut parameters = TlsParameters::builder(host.to_owned());
        if let Some(path) = &settings.email_ssl_cafile {
            parameters = parameters.add_root_certificate(ca_file(path)?);
        }
        let parameters = parameters.build().map_err(error)?;
        if settings.email_use_ssl {
            Tls::Wrapper(parameters)
        } else {
            Tls::Required(parameters)
        }
    } else {
        Tls::None
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .tls(tls)
        .port(settings.email_port)
        .timeout(Some(settings.email_timeout));
    if !settings.email_host_user.is_empty() {
        builder = builder.credentials(Credentials::new(
            settings.email_host_user.clone(),
            settings.email_host_password.clone().unwrap_or_default(),
        ));
    }
    Ok(builder.build())
}

/// The certificates of `EMAIL_SSL_CAFILE`, all of them (a bundle may hold several CAs).
fn ca_file(path: &str) -> Result<Certificate, MailError> {
    let failed = |message: String| MailError::CaFile {
        path: path.to_owned(),
        message,
    };
    let pem = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
    // lettre skips what is not a certificate: a key or an empty file would add nothing and
    // leave the operator wondering why the server is not trusted.
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(failed("no PEM certificate in it".into()));
    }
    Certificate::from_pem(&pem).map_err(|e| failed(e.to_string()))
}

/// The account mails' texts: allauth's templates as the reference renders them, each
/// replaceable by a file of the same name in `EMAIL_TEMPLATE_DIR`. Placeholders are
/// `{site_name}`, `{username}`, and `{password_reset_url}` or `{activate_url}`.
#[derive(Debug, Clone)]
pub struct Templates {
    /// `password_reset_subject.txt`.
    pub password_reset_subject: String,
    /// `password_reset_message.txt`.
    pub password_reset_message: String,
    /// `email_confirmation_subject.txt`.
    pub email_confirmation_subject: String,
    /// `email_confirmation_message.txt`.
    pub email_confirmation_message: String,
}

const RESET_SUBJECT: &str = "[{site_name}] Password Reset Email";
const RESET_MESSAGE: &str = "Hello from {site_name}!

You're receiving this email because you or someone else has requested a password reset for your user account.
It can be safely ignored if you did not request a password reset. Click the link below to reset your password.

{password_reset_url}

In case you forgot, your username is {username}.

Thank you for using {site_name}!
{site_name}
";
const CONFIRM_SUBJECT: &str = "[{site_name}] Please Confirm Your Email Address";
const CONFIRM_MESSAGE: &str = "Hello from {site_name}!

You're receiving this email because user {username} has given your email address to register an account on {site_name}.

To confirm this is correct, go to {activate_url}

Thank you for using {site_name}!
{site_name}
";

impl Default for Templates {
    fn default() -> Self {
        Self {
            password_reset_subject: RESET_SUBJECT.into(),
            password_reset_message: RESET_MESSAGE.into(),
            email_confirmation_subject: CONFIRM_SUBJECT.into(),
            email_confirmation_message: CONFIRM_MESSAGE.into(),
        }
    }
}

impl Templates {
    /// The built-in templates, with those `EMAIL_TEMPLATE_DIR` holds in their place.
    pub fn from_settings(settings: &Settings) -> Result<Self, MailError> {
        let mut templates = Self::default();
        let Some(dir) = &settings.email_template_dir else {
            return Ok(templates);
        };
        for (name, slot) in [
            (
                "password_reset_subject.txt",
                &mut templates.password_reset_subject,
            ),
            (
                "password_reset_message.txt",
                &mut templates.password_reset_message,
            ),
            (
                "email_confirmation_subject.txt",
                &mut templates.email_confirmation_subject,
            ),
            (
                "email_confirmation_message.txt",
                &mut templates.email_confirmation_message,
            ),
        ] {
            let path = std::path::Path::new(dir).join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => *slot = text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(MailError::Template {
                        path: path.display().to_string(),
                        source,
                    });
                }
            }
        }
        Ok(templates)
    }

    /// Fills `template`'s `{name}` placeholders from `values`; subjects are cut at the first
    /// line break, as Django does.
    pub fn render(template: &str, values: &[(&str, &str)]) -> String {
        let mut text = template.to_owned();
        for (name, value) in values {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }

    /// A subject: rendered, on one line.
    pub fn render_subject(template: &str, values: &[(&str, &str)]) -> String {
        Self::render(template, values)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned()
    }
}
