//! Outgoing mail: an SMTP relay (lettre) or the `outbox` folder of `.eml` files.
//!
//! [`Mailer::send`] never blocks the caller: it hands the message to a background task that
//! tries up to `mail.send_attempts` times with a growing pause, and logs (without the body, which
//! may hold a sign-in link) when a message is finally given up. The request that caused the mail
//! answers the same whether or not the mail went out. `--dev` always writes to the outbox.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{MailTransport, Settings, SmtpSecurity};
use crate::error::{Error, Result};

/// Where mail goes.
#[derive(Clone)]
enum Transport {
    /// An SMTP relay.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `.eml` files in a directory.
    Outbox(PathBuf),
}

/// The mail sender shared by every request.
#[derive(Clone)]
pub struct Mailer {
    transport: Arc<Transport>,
    from: Mailbox,
    attempts: u32,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match *self.transport {
            Transport::Smtp(_) => "smtp",
            Transport::Outbox(_) => "outbox",
        };
        write!(f, "Mailer({kind})")
    }
}

/// A message to send: one recipient, a subject, plain text and HTML bodies.
#[derive(Clone)]
pub struct Mail {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Bodies carry sign-in links: never print them.
        write!(f, "Mail(to={}, subject={:?})", self.to, self.subject)
    }
}

impl Mailer {
    /// Builds the transport from `[mail]` (`--dev` forces the outbox).
    pub fn from_settings(s: &Settings) -> Result<Mailer> {
        let m = &s.mail;
        let from: Mailbox = m.from.parse().map_err(|e| {
            Error::internal(format!(
                "`mail.from` is not a valid address ({e}); use e.g. \"Gatehouse <auth@example.com>\""
            ))
        })?;
        let transport = if s.dev || m.transport == MailTransport::Outbox {
            Transport::Outbox(s.data_dir.join("outbox"))
        } else {
            let builder = match m.smtp_security {
                SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&m.smtp_host),
                SmtpSecurity::Starttls => {
                    AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&m.smtp_host)
                }
                SmtpSecurity::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                    &m.smtp_host,
                )),
            }
            .map_err(|e| Error::internal(format!("`mail.smtp_host`: {e}")))?;
            let mut builder = builder
                .port(m.smtp_port)
                .timeout(Some(Duration::from_secs(m.smtp_timeout_secs.max(1))));
            if let Some(user) = &m.smtp_username {
                let password = match (&m.smtp_password, &m.smtp_password_file) {
                    (Some(p), _) => p.expose().to_owned(),
                    (None, Some(f)) => std::fs::read_to_string(f)
                        .map_err(|e| {
                            Error::internal(format!(
                                "cannot read `mail.smtp_password_file` {}: {e}",
                                f.display()
                            ))
                        })?
                        .trim_end_matches(['\r', '\n'])
                        .to_owned(),
                    (None, None) => String::new(),
                };
                builder = builder.credentials(Credentials::new(user.clone(), password));
            }
            Transport::Smtp(builder.build())
        };
        Ok(Mailer {
            transport: Arc::new(transport),
            from,
            attempts: m.send_attempts.max(1),
        })
    }

    /// Queues a message; returns at once. Delivery is retried in the background.
    pub fn send(&self, mail: Mail) {
        let me = self.clone();
        let spawned = tokio::runtime::Handle::try_current().map(|h| {
            h.spawn(async move {
                me.deliver_with_retries(mail).await;
            })
        });
        if spawned.is_err() {
            tracing::error!("mail not sent: no async runtime");
        }
    }

    async fn deliver_with_retries(&self, mail: Mail) {
        let msg = match self.build(&mail) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(to = %mail.to, error = %e, "mail could not be built");
                return;
            }
        };
        let mut pause = Duration::from_millis(500);
        for attempt in 1..=self.attempts {
            match self.deliver(&msg).await {
                Ok(()) => {
                    tracing::info!(to = %mail.to, subject = %mail.subject, attempt, "mail sent");
                    return;
                }
                Err(e) if attempt < self.attempts => {
                    tracing::warn!(to = %mail.to, attempt, error = %e, "mail failed, will retry");
                    tokio::time::sleep(pause).await;
                    pause *= 4;
                }
                Err(e) => {
                    tracing::error!(to = %mail.to, attempts = attempt, error = %e, "mail given up");
                }
            }
        }
    }

    fn build(&self, mail: &Mail) -> Result<Message> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| Error::bad_request(format!("invalid recipient: {e}")))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(mail.text.clone()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(mail.html.clone()),
                    ),
            )
            .map_err(Error::internal)
    }

    async fn deliver(&self, msg: &Message) -> Result<()> {
        match &*self.transport {
            Transport::Smtp(t) => t
                .send(msg.clone())
                .await
                .map(|_| ())
                .map_err(Error::internal),
            Transport::Outbox(dir) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| Error::internal(format!("outbox {}: {e}", dir.display())))?;
                let name = format!(
                    "{}-{}.eml",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f"),
                    uuid::Uuid::new_v4().simple()
                );
                let tmp = dir.join(format!(".{name}.tmp"));
                tokio::fs::write(&tmp, msg.formatted())
                    .await
                    .map_err(Error::internal)?;
                tokio::fs::rename(&tmp, dir.join(name))
                    .await
                    .map_err(Error::internal)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_every_transport_and_hides_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("smtp_password");
        std::fs::write(&pw, "s3cret\n").unwrap();
        for security in [
            SmtpSecurity::Starttls,
            SmtpSecurity::Tls,
            SmtpSecurity::None,
        ] {
            let mut s = Settings::default();
            s.mail.transport = MailTransport::Smtp;
            s.mail.smtp_security = security;
            s.mail.smtp_username = Some("relay".into());
            s.mail.smtp_password_file = Some(pw.clone());
            let m = Mailer::from_settings(&s).unwrap();
            assert_eq!(format!("{m:?}"), "Mailer(smtp)");
            s.dev = true;
            assert_eq!(
                format!("{:?}", Mailer::from_settings(&s).unwrap()),
                "Mailer(outbox)"
            );
        }
        let mut s = Settings::default();
        s.mail.transport = MailTransport::Smtp;
        s.mail.smtp_username = Some("relay".into());
        s.mail.smtp_password_file = Some(dir.path().join("missing"));
        assert!(Mailer::from_settings(&s).is_err());
        s.mail.from = "not an address".into();
        assert!(Mailer::from_settings(&s).is_err());
        let mail = Mail {
            to: "a@b.co".into(),
            subject: "hi".into(),
            text: "https://x/auth/verify?token=ml_secret".into(),
            html: "ml_secret".into(),
        };
        assert!(!format!("{mail:?}").contains("ml_secret"));
    }
}
