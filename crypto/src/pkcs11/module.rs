//! The process-wide table of loaded PKCS#11 modules.
//!
//! A PKCS#11 module is initialised once per process (`C_Initialize`; a second call
//! answers `CKR_CRYPTOKI_ALREADY_INITIALIZED`) and `C_Finalize` tears down every
//! session of every user in the process. So two signers on one module, or
//! `generate` followed by `open` in one process, must share one initialisation.
//! This table does that:
//!
//! * a module is `dlopen()`ed once per canonical path and never unloaded (some
//!   modules register process-wide handlers, e.g. OpenSSL's, and do not survive
//!   `dlclose` + `dlopen`);
//! * it is initialised when its first [`ModuleHandle`] is taken and finalised when
//!   the last one is dropped, both under the table's lock, so an initialisation
//!   can never race a finalisation. Finalising when unused also makes SoftHSM2
//!   re-read `SOFTHSM2_CONF` at the next use, which the tests rely on;
//! * if something else in the process initialised the module first, we use it and
//!   leave finalisation to that owner.

use super::error::{describe, Pkcs11Error};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

struct Entry {
    path: PathBuf,
    ctx: Pkcs11,
    /// Live [`ModuleHandle`]s.
    users: usize,
    /// We called `C_Initialize` successfully, so we call `C_Finalize`.
    owns_init: bool,
}

/// Loaded modules. A Vec: a process uses one or two modules.
static MODULES: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

fn table() -> MutexGuard<'static, Vec<Entry>> {
    // The table's invariants hold between statements, so a panic elsewhere while
    // holding the lock leaves it consistent.
    MODULES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A reference to an initialised module. Keep it alive for as long as any session
/// opened through it (declare it after the session in a struct, before it in a
/// function, so the session is dropped first).
pub(crate) struct ModuleHandle {
    ctx: Pkcs11,
    path: PathBuf,
}

impl std::fmt::Debug for ModuleHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleHandle")
            .field("path", &self.path)
            .finish()
    }
}

impl ModuleHandle {
    /// Loads (once) and initialises (if no one else holds it) the module at `path`.
    pub(crate) fn acquire(path: &Path) -> Result<ModuleHandle, Pkcs11Error> {
        let canonical = std::fs::canonicalize(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Pkcs11Error::ModuleNotFound {
                    path: path.to_owned(),
                }
            } else {
                Pkcs11Error::ModuleLoad {
                    path: path.to_owned(),
                    reason: e.to_string(),
                }
            }
        })?;
        let mut modules = table();
        let index = match modules.iter().position(|e| e.path == canonical) {
            Some(i) => i,
            None => {
                let ctx = Pkcs11::new(&canonical).map_err(|e| Pkcs11Error::ModuleLoad {
                    path: path.to_owned(),
                    reason: describe(&e),
                })?;
                modules.push(Entry {
                    path: canonical.clone(),
                    ctx,
                    users: 0,
                    owns_init: false,
                });
                modules.len() - 1
            }
        };
        let entry = &mut modules[index];
        if entry.users == 0 {
            // OS_LOCKING_OK: we call the module from several threads (one at a time
            // per session, see the signer's Mutex, but health checks and other
            // signers may run in parallel).
            match entry
                .ctx
                .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            {
                Ok(()) => entry.owns_init = true,
                Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {
                    entry.owns_init = false
                }
                Err(e) => {
                    return Err(Pkcs11Error::ModuleLoad {
                        path: path.to_owned(),
                        reason: describe(&e),
                    })
                }
            }
        }
        entry.users += 1;
        Ok(ModuleHandle {
            ctx: entry.ctx.clone(),
            path: canonical,
        })
    }

    pub(crate) fn ctx(&self) -> &Pkcs11 {
        &self.ctx
    }

    /// Initialises the module again after someone finalised it behind our back
    /// (`CKR_CRYPTOKI_NOT_INITIALIZED`). Already initialised is fine.
    pub(crate) fn reinitialize(&self) -> Result<(), CkError> {
        let mut modules = table();
        match self
            .ctx
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        {
            Ok(()) => {
                if let Some(entry) = modules.iter_mut().find(|e| e.path == self.path) {
                    entry.owns_init = true;
                }
                Ok(())
            }
            Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for ModuleHandle {
    fn drop(&mut self) {
        let mut modules = table();
        let Some(entry) = modules.iter_mut().find(|e| e.path == self.path) else {
            return;
        };
        entry.users = entry.users.saturating_sub(1);
        if entry.users == 0 && entry.owns_init {
            entry.owns_init = false;
            // Nothing useful to do with an error here: the module is unused.
            let _ = entry.ctx.clone().finalize();
        }
    }
}
