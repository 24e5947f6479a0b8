//! Typed calls into plugins: discovery, and streaming decoder and transformer
//! sessions that hold one instance for the life of one artifact.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::ResourceAny;

use super::error::{CallErrorKind, PluginCallError};
use super::instance::{Bindings, GuestResult, Instance, Plugin};
use super::validate;
use crate::wit::types::{Artifact, Batch, PartitionValues, Window};

impl Plugin {
    /// Lists the artifacts a source plugin finds for `params` in `window`.
    /// Every artifact is validated: a safe relative key, an allowed URL host,
    /// path-safe partition values, unique keys.
    pub fn discover(
        &self,
        params: &str,
        window: &Window,
    ) -> Result<Vec<Artifact>, PluginCallError> {
        let artifacts = self.with_instance("discover", |store, bindings| match bindings {
            Bindings::Source(b) => b
                .cryptolake_plugin_source()
                .call_discover(store, params, window),
            Bindings::Transform(_) => Ok(Ok(Vec::new())),
        })?;
        validate::artifacts(&artifacts, &self.http().allowed)
            .map_err(|m| self.error("discover", CallErrorKind::InvalidOutput(m)))?;
        Ok(artifacts)
    }

    /// Opens a decoder for one artifact.
    pub fn open_decoder(
        self: &Arc<Self>,
        params: &str,
        artifact: &Artifact,
    ) -> Result<DecoderSession, PluginCallError> {
        let mut instance = self.checkout("decoder.open")?;
        instance.store.data_mut().take_session_counters();
        let opened = self.call(
            &mut instance,
            "decoder.open",
            |store, bindings| match bindings {
                Bindings::Source(b) => b
                    .cryptolake_plugin_source()
                    .decoder()
                    .call_open(store, params, artifact),
                Bindings::Transform(_) => Err(wasmtime::Error::msg("a transform has no decoder")),
            },
        );
        let resource = self.keep_if_healthy(instance, opened)?;
        Ok(DecoderSession {
            session: Session::new(Arc::clone(self), resource),
        })
    }

    /// Opens a transformer for the artifact whose rows are in `partition`.
    pub fn open_transformer(
        self: &Arc<Self>,
        params: &str,
        partition: &PartitionValues,
    ) -> Result<TransformSession, PluginCallError> {
        let mut instance = self.checkout("transformer.open")?;
        instance.store.data_mut().take_session_counters();
        let opened = self.call(
            &mut instance,
            "transformer.open",
            |store, bindings| match bindings {
                Bindings::Transform(b) => b
                    .cryptolake_plugin_transform()
                    .transformer()
                    .call_open(store, params, partition),
                Bindings::Source(_) => Err(wasmtime::Error::msg("a source has no transformer")),
            },
        );
        let resource = self.keep_if_healthy(instance, opened)?;
        Ok(TransformSession {
            session: Session::new(Arc::clone(self), resource),
        })
    }

    /// After an `open`: on success the instance stays with the session; on a
    /// returned error it goes back to the pool; on a fault it is dropped.
    fn keep_if_healthy(
        &self,
        instance: Instance,
        opened: Result<ResourceAny, PluginCallError>,
    ) -> Result<(Instance, ResourceAny), PluginCallError> {
        match opened {
            Ok(resource) => Ok((instance, resource)),
            Err(error) => {
                if !error.poisons_instance() {
                    self.checkin(instance);
                }
                Err(error)
            }
        }
    }
}

/// Counters a plugin recorded while working on one artifact, by name.
pub type Counters = BTreeMap<String, u64>;

/// An instance lent to one streaming resource.
struct Session {
    plugin: Arc<Plugin>,
    live: Option<(Instance, ResourceAny)>,
    counters: Counters,
}

impl Session {
    fn new(plugin: Arc<Plugin>, (mut instance, resource): (Instance, ResourceAny)) -> Self {
        // What `open` recorded belongs to this artifact (earlier calls' were
        // discarded at checkout).
        let counters = instance.store.data_mut().take_session_counters();
        Self {
            plugin,
            live: Some((instance, resource)),
            counters,
        }
    }

    fn call(
        &mut self,
        call: &'static str,
        f: impl FnOnce(
            &mut wasmtime::Store<super::HostState>,
            &Bindings,
            ResourceAny,
        ) -> GuestResult<Vec<Batch>>,
    ) -> Result<Vec<Batch>, PluginCallError> {
        let Some((instance, resource)) = self.live.as_mut() else {
            return Err(self.plugin.error(
                call,
                CallErrorKind::InvalidOutput("session already ended by an earlier failure".into()),
            ));
        };
        let resource = *resource;
        let result = self.plugin.call(instance, call, |store, bindings| {
            f(store, bindings, resource)
        });
        let result = result.and_then(|batches| {
            validate::batches(&batches)
                .map(|()| batches)
                .map_err(|m| self.plugin.error(call, CallErrorKind::InvalidOutput(m)))
        });
        if result
            .as_ref()
            .is_err_and(PluginCallError::poisons_instance)
        {
            // Poisoned (or produced garbage): never reuse this instance.
            self.live = None;
        }
        result
    }

    /// Ends the resource and returns the instance to the pool.
    fn close(&mut self) {
        if let Some((mut instance, resource)) = self.live.take() {
            for (name, value) in instance.store.data_mut().take_session_counters() {
                *self.counters.entry(name).or_insert(0) += value;
            }
            if resource.resource_drop(&mut instance.store).is_ok() {
                self.plugin.checkin(instance);
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

/// A source plugin's decoder over one artifact.
pub struct DecoderSession {
    session: Session,
}

impl DecoderSession {
    /// Feeds a chunk of decompressed bytes.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Batch>, PluginCallError> {
        self.session
            .call("decoder.push", |store, bindings, resource| match bindings {
                Bindings::Source(b) => b
                    .cryptolake_plugin_source()
                    .decoder()
                    .call_push(store, resource, chunk),
                Bindings::Transform(_) => Err(wasmtime::Error::msg("not a source")),
            })
    }

    /// Ends the input.
    pub fn finish(self) -> Result<Vec<Batch>, PluginCallError> {
        self.finish_with_counters().map(|(batches, _)| batches)
    }

    /// Ends the input; also returns the counters the plugin recorded for
    /// this artifact.
    pub fn finish_with_counters(mut self) -> Result<(Vec<Batch>, Counters), PluginCallError> {
        let result = self.session.call(
            "decoder.finish",
            |store, bindings, resource| match bindings {
                Bindings::Source(b) => b
                    .cryptolake_plugin_source()
                    .decoder()
                    .call_finish(store, resource),
                Bindings::Transform(_) => Err(wasmtime::Error::msg("not a source")),
            },
        );
        self.session.close();
        result.map(|batches| (batches, std::mem::take(&mut self.session.counters)))
    }
}

/// A transform plugin's stream over one artifact.
pub struct TransformSession {
    session: Session,
}

impl TransformSession {
    /// Feeds one batch.
    pub fn push(&mut self, batch: &Batch) -> Result<Vec<Batch>, PluginCallError> {
        self.session.call(
            "transformer.push",
            |store, bindings, resource| match bindings {
                Bindings::Transform(b) => b
                    .cryptolake_plugin_transform()
                    .transformer()
                    .call_push(store, resource, batch),
                Bindings::Source(_) => Err(wasmtime::Error::msg("not a transform")),
            },
        )
    }

    /// Ends the stream.
    pub fn finish(self) -> Result<Vec<Batch>, PluginCallError> {
        self.finish_with_counters().map(|(batches, _)| batches)
    }

    /// Ends the stream; also returns the counters the plugin recorded for
    /// this artifact.
    pub fn finish_with_counters(mut self) -> Result<(Vec<Batch>, Counters), PluginCallError> {
        let result =
            self.session.call(
                "transformer.finish",
                |store, bindings, resource| match bindings {
                    Bindings::Transform(b) => b
                        .cryptolake_plugin_transform()
                        .transformer()
                        .call_finish(store, resource),
                    Bindings::Source(_) => Err(wasmtime::Error::msg("not a transform")),
                },
            );
        self.session.close();
        result.map(|batches| (batches, std::mem::take(&mut self.session.counters)))
    }
}
