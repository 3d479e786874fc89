//! Extension verbs, and the RFC 6856 session changes their replies ask for.

use super::{Driver, Streamed};
use poppet_proto::{BodyEncoder, Response, ResponseCode, Text};
use poppet_sdk::BoxedReader;

impl Driver<'_> {
    /// Runs an extension verb and applies the session change its `+OK` reply asks for (UTF-8
    /// mode, the language of the core's texts). A reply that names a language no extension offers
    /// is the plugin's bug: logged, and answered `-ERR [SYS/TEMP]`.
    pub(super) async fn extension(
        &mut self,
        verb: String,
        args: Vec<String>,
    ) -> (Response, Option<BoxedReader>) {
        let ext = self
            .shared
            .plugins
            .extensions
            .iter()
            .find(|e| e.verbs().iter().any(|v| v.verb.eq_ignore_ascii_case(&verb)));
        let Some(ext) = ext else {
            let text = Text::new("unknown-command").arg("verb", &verb);
            return (Response::err_text(None, text), None);
        };
        let max_args = ext
            .verbs()
            .iter()
            .find(|v| v.verb.eq_ignore_ascii_case(&verb))
            .map_or(0, |v| v.max_args as usize);
        if args.len() > max_args {
            let text = Text::new("extension-arguments")
                .arg("verb", &verb)
                .arg("max", max_args);
            return (Response::err_text(None, text), None);
        }
        let call = poppet_sdk::ExtensionCall {
            verb,
            args,
            session: self.session_view(),
        };
        let failed = || {
            let text = Text::new("extension-failed");
            (Response::err_text(Some(ResponseCode::SysTemp), text), None)
        };
        let reply = match self.bounded(ext.handle(&call)).await {
            Ok(reply) => reply,
            Err(e) => {
                self.plugin_error("extension", &e);
                return failed();
            }
        };
        if reply.ok {
            if let Some(tag) = &reply.change.language {
                match self.shared.plugins.catalog(tag) {
                    Some(catalog) => self.session.set_language(catalog),
                    None => {
                        log::error!(
                            "session {}: extension for {} selected language {tag:?}, which no \
                             extension offers",
                            self.conn.id,
                            call.verb
                        );
                        return failed();
                    }
                }
            }
            if reply.change.utf8 {
                self.session.enable_utf8();
            }
        }
        let stream = reply.stream.as_ref().and_then(|s| s.take());
        (crate::shared::reply_to_response(reply), stream)
    }

    /// Writes a streamed multi-line reply: the first line, the body dot-stuffed through the same
    /// encoder as RETR (bounded buffers, memory flat in the body's size), the terminating `.`. A
    /// read error before anything was flushed takes the reply back and answers `-ERR [SYS/TEMP]`;
    /// after, the connection closes (the client must not take a short reply for a whole one).
    pub(super) async fn stream_reply(
        &mut self,
        first: Response,
        mut body: BoxedReader,
    ) -> std::io::Result<()> {
        let mark = self.out.len();
        first.encode(&mut self.out);
        let mut encoder = BodyEncoder::new(None);
        match self
            .stream_body(&mut body, &mut encoder, mark, 16 * 1024)
            .await?
        {
            Streamed::Done { .. } => {}
            Streamed::TakenBack(e) => {
                log::error!("session {}: extension reply failed: {e}", self.conn.id);
                let text = Text::new("extension-failed");
                let reply = Response::err_text(Some(ResponseCode::SysTemp), text);
                self.session.extension_completed(reply);
                return Ok(());
            }
            Streamed::Broken(e) => {
                log::error!(
                    "session {}: extension reply failed mid-stream, closing: {e}",
                    self.conn.id
                );
                return Err(e);
            }
        }
        encoder.finish(&mut self.out);
        self.session.extension_streamed();
        Ok(())
    }
}
