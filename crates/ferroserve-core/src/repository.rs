//! The model repository on disk, in Triton's layout:
//!
//! ```text
//! <repository>/
//!   <model>/
//!     config.pbtxt          optional
//!     labels.txt            any label files named by `label_filename`
//!     1/model.onnx          one folder per version, a positive integer,
//!     2/model.onnx          holding `default_model_filename` (model.onnx by default,
//!                           model.xml for the openvino backend)
//! ```
//!
//! An OpenVINO IR model file (`*.xml`) keeps its weights beside it, in the `*.bin` of
//! the same name ([`ir_weights_file`]).
//!
//! Folders whose names are not positive integers (written without leading zeros) are
//! not versions and are ignored, as are hidden folders at the top of the repository.
//!
//! The repository is a jail: every file the server opens in it (model folders,
//! `config.pbtxt`, model files, label files) must resolve inside it once symbolic links
//! are followed, unless the repository is opened with [`Links::Anywhere`] or names the
//! folders links may also lead into. Error messages name files relative to the
//! repository ([`ModelRepository::redact`]), so that a client never learns the server's
//! paths.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{ConfigError, ModelConfig, VersionPolicy};
use crate::labels::{Labels, LabelsError};

/// The name of a model's configuration file inside its folder.
pub const CONFIG_FILENAME: &str = "config.pbtxt";

/// Why a repository or a model in it could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// A file or folder could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The repository path is not a folder.
    #[error("model repository {} is not a directory", path.display())]
    NotADirectory { path: PathBuf },

    /// No model folder of that name.
    #[error("no model '{name}' in the model repository")]
    ModelNotFound { name: String },

    /// The model's `config.pbtxt` is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// The version policy selects no version folder that exists.
    #[error("model '{model}': no version to serve in {} (version folders found: {found:?})", folder.display())]
    NoVersions {
        model: String,
        folder: PathBuf,
        found: Vec<u64>,
    },

    /// `version_policy.specific` names a version that has no folder.
    #[error("{}: version_policy.specific.versions: version {version} has no folder in {}", file.display(), folder.display())]
    MissingVersion {
        file: PathBuf,
        version: u64,
        folder: PathBuf,
    },

    /// A selected version folder lacks the model file.
    #[error("model file {} is missing", path.display())]
    MissingModelFile { path: PathBuf },

    /// An OpenVINO IR model file lacks the weights file beside it.
    #[error("weights file {} of the OpenVINO IR {} is missing", weights.display(), model.display())]
    MissingWeightsFile { model: PathBuf, weights: PathBuf },

    /// A file or folder resolves outside the repository (a `..` in a file name, or a
    /// symbolic link leading out).
    #[error("{} leads outside the model repository, which is not allowed (see --allow-links-outside-repository)", path.display())]
    Outside { path: PathBuf },

    /// A file name in the configuration leads outside the repository.
    #[error("{}: {field} leads outside the model repository, which is not allowed (see --allow-links-outside-repository)", file.display())]
    OutsideField { file: PathBuf, field: String },

    /// A file sent with a load request names a path that is not inside the model's
    /// folder.
    #[error("file:{path}: a file of the model's folder must be a path inside it, such as 1/model.onnx, without '.' or '..'")]
    BadUploadPath { path: String },

    /// A labels file named by an output could not be loaded.
    #[error("{}: {field}: {source}", file.display())]
    Labels {
        file: PathBuf,
        field: String,
        #[source]
        source: LabelsError,
    },
}

impl Default for Links {
    fn default() -> Self {
        Links::Inside(Vec::new())
    }
}

/// A model repository folder.
#[derive(Debug, Clone)]
pub struct ModelRepository {
    root: PathBuf,
    /// Where the files opened may be, symbolic links followed: the repository's real
    /// path and any folders allowed besides.
    jail: Links,
}

/// Where the files of a repository may resolve to. The default is inside the
/// repository only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Links {
    /// Inside the repository, or inside one of these folders.
    Inside(Vec<PathBuf>),
    /// Anywhere: links may lead out of the repository.
    Anywhere,
}

/// One model folder as listed by [`ModelRepository::index`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    /// The folder name, which is the model name.
    pub name: String,
    /// Every version folder present, ascending, whatever the version policy.
    pub versions: Vec<u64>,
    /// Whether the folder has a `config.pbtxt`.
    pub has_config: bool,
    /// Why [`ModelRepository::load`] fails for this model, if it does.
    pub error: Option<String>,
}

/// A model ready to be served: its configuration and the files of the versions to serve.
#[derive(Debug, Clone)]
pub struct ModelDescription {
    pub name: String,
    /// The model folder.
    pub path: PathBuf,
    /// The parsed `config.pbtxt` with `name` filled in; `None` when there is no file, in
    /// which case build one with [`ModelConfig::new`] and [`ModelConfig::autocomplete`].
    pub config: Option<ModelConfig>,
    /// The versions the version policy selects, ascending (the latest one by default).
    pub versions: Vec<ModelVersion>,
    /// Labels of each output that declares a `label_filename`, by output name.
    pub labels: BTreeMap<String, Labels>,
}

/// One version of a model to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelVersion {
    pub version: u64,
    /// The model file: `<model>/<version>/<default_model_filename>` (which an ensemble's
    /// version folder does not have).
    pub model_file: PathBuf,
}

impl ModelRepository {
    /// A repository rooted at `dir`, which must be a folder.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, RepositoryError> {
        let root = dir.into();
        let metadata = std::fs::metadata(&root).map_err(|source| RepositoryError::Io {
            path: root.clone(),
            source,
        })?;
        if !metadata.is_dir() {
            return Err(RepositoryError::NotADirectory { path: root });
        }
        let real = root.canonicalize().map_err(|source| RepositoryError::Io {
            path: root.clone(),
            source,
        })?;
        Ok(ModelRepository {
            root,
            jail: Links::Inside(vec![real]),
        })
    }

    /// Lets symbolic links in the repository also lead into `folder` (KServe's
    /// single-model layout links to the one model file).
    pub fn allow_links_into(mut self, folder: &Path) -> Self {
        if let (Links::Inside(folders), Ok(real)) = (&mut self.jail, folder.canonicalize()) {
            folders.push(real);
        }
        self
    }

    /// Lets symbolic links lead anywhere (`--allow-links-outside-repository`).
    pub fn allow_links_anywhere(mut self) -> Self {
        self.jail = Links::Anywhere;
        self
    }

    /// `path` (inside the repository folder) if it resolves inside the jail; a path that
    /// does not exist passes, for whoever opens it to report.
    fn inside(&self, path: PathBuf) -> Result<PathBuf, RepositoryError> {
        let Links::Inside(folders) = &self.jail else {
            return Ok(path);
        };
        match path.canonicalize() {
            Ok(real) if !folders.iter().any(|f| real.starts_with(f)) => {
                Err(RepositoryError::Outside {
                    path: self.relative(&path),
                })
            }
            _ => Ok(path),
        }
    }

    /// `path` relative to the repository, as error messages name it.
    fn relative(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.root).unwrap_or(path).to_path_buf()
    }

    /// `text` with the repository's location removed from every path in it, so that
    /// files are named relative to the repository: for messages that reach clients,
    /// whatever produced them (the engines name the model files they fail to read).
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        let real = match &self.jail {
            Links::Inside(folders) => folders.first().cloned(),
            Links::Anywhere => self.root.canonicalize().ok(),
        };
        for root in real.iter().chain([&self.root]) {
            let root = root.display().to_string();
            let root = root.trim_end_matches('/');
            if root.is_empty() {
                continue;
            }
            text = text.replace(&format!("{root}/"), "");
            text = text.replace(root, "the model repository");
        }
        text
    }

    /// The repository folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every model folder, by name, each with what [`load`](Self::load) would say of it.
    /// Configuration warnings are not logged here; `load` logs them.
    pub fn index(&self) -> Result<Vec<ModelEntry>, RepositoryError> {
        let mut entries = Vec::new();
        for name in subfolders(&self.root)? {
            if name.starts_with('.') {
                continue;
            }
            let folder = self.root.join(&name);
            let (versions, error) = match version_folders(&folder) {
                Ok(versions) => (versions, self.describe(&name, false, None).err()),
                Err(e) => (Vec::new(), Some(e)),
            };
            entries.push(ModelEntry {
                has_config: folder.join(CONFIG_FILENAME).is_file(),
                name,
                versions,
                error: error.map(|e| self.redact(&e.to_string())),
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Reads the model `name`: its configuration (whose warnings are logged), the versions
    /// to serve and its labels. The configuration's `name`, when given, must equal `name`.
    pub fn load(&self, name: &str) -> Result<ModelDescription, RepositoryError> {
        self.describe(name, true, None)
    }

    /// Like [`load`](Self::load), with `config` in place of the folder's `config.pbtxt`
    /// (a load request's override): the versions and files still come from the model's
    /// folder, and the configuration's `name`, when given, must equal `name`.
    pub fn load_with_config(
        &self,
        name: &str,
        config: &ModelConfig,
    ) -> Result<ModelDescription, RepositoryError> {
        self.describe(name, true, Some(config))
    }

    fn describe(
        &self,
        name: &str,
        log_warnings: bool,
        given: Option<&ModelConfig>,
    ) -> Result<ModelDescription, RepositoryError> {
        let folder = self.model_folder(name)?;
        let config_file = self.inside(folder.join(CONFIG_FILENAME))?;
        let config = if let Some(given) = given {
            let mut config = given.clone();
            let origin = config.source.clone().unwrap_or_default();
            if config.name.is_empty() {
                config.name = name.to_string();
            } else if config.name != name {
                return Err(ConfigError::Invalid {
                    file: origin.display().to_string(),
                    field: "name".into(),
                    message: format!("'{}' differs from the model name '{name}'", config.name),
                }
                .into());
            }
            Some(config)
        } else if config_file.exists() {
            let text =
                std::fs::read_to_string(&config_file).map_err(|source| ConfigError::Read {
                    file: self.relative(&config_file),
                    source,
                })?;
            let mut config = ModelConfig::parse(&text, &self.relative(&config_file))?;
            if config.name.is_empty() {
                config.name = name.to_string();
            } else if config.name != name {
                return Err(ConfigError::Invalid {
                    file: self.relative(&config_file).display().to_string(),
                    field: "name".into(),
                    message: format!(
                        "'{}' differs from the model folder name '{name}'",
                        config.name
                    ),
                }
                .into());
            }
            if log_warnings {
                for warning in &config.warnings {
                    tracing::warn!(model = name, file = %config_file.display(), "{warning}");
                }
            }
            Some(config)
        } else {
            None
        };

        let found = version_folders(&folder)?;
        let policy = config
            .as_ref()
            .and_then(|c| c.version_policy.clone())
            .unwrap_or_default();
        // Errors about the configuration name where it came from.
        let config_origin = match config.as_ref().and_then(|c| c.source.clone()) {
            Some(source) if given.is_some() => source,
            _ => self.relative(&config_file),
        };
        if let VersionPolicy::Specific { versions } = &policy {
            if let Some(&version) = versions.iter().find(|v| !found.contains(v)) {
                return Err(RepositoryError::MissingVersion {
                    file: config_origin.clone(),
                    version,
                    folder: self.relative(&folder),
                });
            }
        }
        let selected = policy.select(&found);
        if selected.is_empty() {
            return Err(RepositoryError::NoVersions {
                model: name.to_string(),
                folder: self.relative(&folder),
                found,
            });
        }
        let filename = config.as_ref().map_or(
            ModelConfig::DEFAULT_MODEL_FILENAME,
            ModelConfig::model_filename,
        );
        // An ensemble's version folders hold no model file: its steps are other models.
        let ensemble = config.as_ref().is_some_and(ModelConfig::is_ensemble);
        let mut versions = Vec::with_capacity(selected.len());
        for version in selected {
            let model_file = self.inside(folder.join(version.to_string()).join(filename))?;
            if !ensemble && !model_file.exists() {
                return Err(RepositoryError::MissingModelFile {
                    path: self.relative(&model_file),
                });
            }
            if let Some(weights) = ir_weights_file(&model_file) {
                if !self.inside(weights.clone())?.exists() {
                    return Err(RepositoryError::MissingWeightsFile {
                        model: self.relative(&model_file),
                        weights: self.relative(&weights),
                    });
                }
            }
            versions.push(ModelVersion {
                version,
                model_file,
            });
        }

        let mut labels = BTreeMap::new();
        for (i, output) in config.iter().flat_map(|c| c.output.iter().enumerate()) {
            if output.label_filename.is_empty() {
                continue;
            }
            let field = format!("output[{i}].label_filename");
            // Named by the field, not the path, which would show where it leads.
            let file = self
                .inside(folder.join(&output.label_filename))
                .map_err(|_| RepositoryError::OutsideField {
                    file: config_origin.clone(),
                    field: field.clone(),
                })?;
            let loaded = Labels::load(&file, &self.relative(&file)).map_err(|source| {
                RepositoryError::Labels {
                    file: config_origin.clone(),
                    field,
                    source,
                }
            })?;
            labels.insert(output.name.clone(), loaded);
        }

        Ok(ModelDescription {
            name: name.to_string(),
            path: folder,
            config,
            versions,
            labels,
        })
    }

    /// The folder of model `name`. Names that are not a plain folder name (empty, hidden,
    /// or holding a path separator) are never models, so a request cannot leave the
    /// repository.
    fn model_folder(&self, name: &str) -> Result<PathBuf, RepositoryError> {
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && !name.chars().any(std::path::is_separator);
        let folder = self.root.join(name);
        if plain && folder.is_dir() {
            self.inside(folder)
        } else {
            Err(RepositoryError::ModelNotFound {
                name: name.to_string(),
            })
        }
    }
}

/// The weights file of an OpenVINO IR model file: `model.bin` beside `model.xml`. `None`
/// for any other model file (ONNX keeps its weights inside).
pub fn ir_weights_file(model_file: &Path) -> Option<PathBuf> {
    let is_ir = model_file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("xml"));
    is_ir.then(|| model_file.with_extension("bin"))
}

/// Names of the folders directly inside `dir` (following links), in no particular order.
fn subfolders(dir: &Path) -> Result<Vec<String>, RepositoryError> {
    let io_error = |source| RepositoryError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        if let Some(name) = entry.file_name().to_str() {
            if entry.path().is_dir() {
                names.push(name.to_string());
            }
        }
    }
    Ok(names)
}

/// The version folders of a model folder, ascending.
fn version_folders(folder: &Path) -> Result<Vec<u64>, RepositoryError> {
    let mut versions: Vec<u64> = subfolders(folder)?
        .iter()
        .filter_map(|name| {
            let version = name.parse::<u64>().ok()?;
            (version > 0 && version.to_string() == *name).then_some(version)
        })
        .collect();
    versions.sort_unstable();
    Ok(versions)
}

/// A model folder written from the files a load request sends (Triton's
/// `file:<version>/<name>` load parameters), in a repository of its own under the
/// system's temporary folder, so that nothing of it lands in the model repository. The
/// folder is removed when this is dropped.
#[derive(Debug)]
pub struct UploadedModel {
    repository: ModelRepository,
}

impl UploadedModel {
    /// Writes `files` (paths relative to the model's folder, such as `1/model.onnx`, with
    /// their contents) as the folder of model `name`. A path that is absolute, empty, or
    /// holds `.` or `..` is an error, as is a name that is not a plain folder name: no
    /// file can be written outside the new folder.
    pub fn write(name: &str, files: &[(String, Vec<u8>)]) -> Result<Self, RepositoryError> {
        static UPLOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let plain = |part: &str| {
            !part.is_empty() && part != "." && part != ".." && !part.contains(['/', '\\', '\0'])
        };
        if !plain(name) {
            return Err(RepositoryError::ModelNotFound {
                name: name.to_string(),
            });
        }
        for (path, _) in files {
            if !path.split('/').all(plain) {
                return Err(RepositoryError::BadUploadPath { path: path.clone() });
            }
        }
        let upload = UPLOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root =
            std::env::temp_dir().join(format!("ferroserve-upload-{}-{upload}", std::process::id()));
        // Errors name the files as the request did, not where they were written.
        let io_error = |path: &str, source| RepositoryError::Io {
            path: PathBuf::from(path),
            source,
        };
        std::fs::create_dir(&root).map_err(|e| io_error("the folder of uploaded files", e))?;
        // From here on the folder is removed on every return, with `uploaded`.
        let uploaded = UploadedModel {
            repository: ModelRepository::open(&root)?,
        };
        let folder = root.join(name);
        std::fs::create_dir(&folder).map_err(|e| io_error(name, e))?;
        for (path, contents) in files {
            let file = folder.join(path);
            let write = || -> std::io::Result<()> {
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&file)?;
                std::io::Write::write_all(&mut out, contents)
            };
            write().map_err(|e| io_error(&format!("file:{path}"), e))?;
        }
        Ok(uploaded)
    }

    /// The repository holding the one uploaded model.
    pub fn repository(&self) -> &ModelRepository {
        &self.repository
    }
}

impl Drop for UploadedModel {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.repository.root());
    }
}
