//! Extension verbs, and the RFC 6856 session changes their replies ask for.

use super::Driver;
use poppet_proto::{Response, ResponseCode, Text};

impl Driver<'_> {
    /// Runs an extension verb and applies the session change its `+OK` reply asks for (UTF-8
    /// mode, the language of the core's texts). A reply that names a language no extension offers
    /// is the plugin's bug: logged, and answered `-ERR [SYS/TEMP]`.
    pub(super) async fn extension(&mut self, verb: String, args: Vec<String>) -> Response {
        let ext = self
            .shared
            .plugins
            .extensions
            .iter()
            .find(|e| e.verbs().iter().any(|v| v.verb.eq_ignore_ascii_case(&verb)));
        let Some(ext) = ext else {
            return Response::err_text(None, Text::new("unknown-command").arg("verb", &verb));
        };
        let max_args = ext
            .verbs()
            .iter()
            .find(|v| v.verb.eq_ignore_ascii_case(&verb))
            .map_or(0, |v| v.max_args as usize);
        if args.len() > max_args {
            return Response::err_text(
                None,
                Text::new("extension-arguments")
                    .arg("verb", &verb)
                    .arg("max", max_args),
            );
        }
        let call = poppet_sdk::ExtensionCall {
            verb,
            args,
            session: self.session_view(),
        };
        let failed =
            || Response::err_text(Some(ResponseCode::SysTemp), Text::new("extension-failed"));
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
        crate::shared::reply_to_response(reply)
    }
}
