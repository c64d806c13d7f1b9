//! Who may call what: Triton's restricted APIs, with the same rules on HTTP and gRPC.
//!
//! Every route and every gRPC method belongs to one [`ApiGroup`] (Triton's names). A
//! group is open, or restricted to clients that send a given header with a given value
//! (`--restricted-api inference,statistics:x-api-key=s3cret`, as Triton's
//! `--http-restricted-api`). `Authorization: Bearer <value>` is accepted in place of the
//! named header, so that a browser page needs only the key. Health stays open:
//! probes carry no keys.
//!
//! State-changing requests (repository control, shared-memory registration) from a
//! browser page of another origin are refused whatever their content type: a browser
//! sends `Origin` with every such request, and a form or `text/plain` POST needs no
//! preflight, so the `Origin` itself is checked (`--cors-allow-origin` lists the
//! origins allowed).

use std::fmt;
use std::str::FromStr;

use http::header::{HeaderName, AUTHORIZATION, ORIGIN};
use http::{HeaderMap, Method};

/// A group of APIs restricted together, named as Triton names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiGroup {
    Health,
    Metadata,
    Inference,
    SharedMemory,
    ModelConfig,
    ModelRepository,
    Statistics,
    Trace,
    Logging,
}

impl ApiGroup {
    const ALL: [ApiGroup; 9] = [
        ApiGroup::Health,
        ApiGroup::Metadata,
        ApiGroup::Inference,
        ApiGroup::SharedMemory,
        ApiGroup::ModelConfig,
        ApiGroup::ModelRepository,
        ApiGroup::Statistics,
        ApiGroup::Trace,
        ApiGroup::Logging,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ApiGroup::Health => "health",
            ApiGroup::Metadata => "metadata",
            ApiGroup::Inference => "inference",
            ApiGroup::SharedMemory => "shared-memory",
            ApiGroup::ModelConfig => "model-config",
            ApiGroup::ModelRepository => "model-repository",
            ApiGroup::Statistics => "statistics",
            ApiGroup::Trace => "trace",
            ApiGroup::Logging => "logging",
        }
    }

    /// The group of an HTTP path; `None` for what is open to everyone (the browser
    /// page, its assets and the API documents, which call the APIs under these rules).
    pub fn of_http_path(path: &str) -> Option<ApiGroup> {
        let rest = path.strip_prefix("/v2")?;
        let group = match rest {
            "" | "/" => ApiGroup::Metadata,
            _ if rest.starts_with("/health/") => ApiGroup::Health,
            _ if rest.starts_with("/repository/") => ApiGroup::ModelRepository,
            _ if rest.starts_with("/systemsharedmemory")
                || rest.starts_with("/cudasharedmemory") =>
            {
                ApiGroup::SharedMemory
            }
            "/openapi.json" => return None,
            // The page's live view: statistics, under the same key.
            "/ui/live" => ApiGroup::Statistics,
            _ if rest.starts_with("/docs") => return None,
            _ if rest.starts_with("/trace") => ApiGroup::Trace,
            _ if rest.starts_with("/logging") => ApiGroup::Logging,
            _ if rest.starts_with("/models/") || rest == "/models" => {
                match rest.rsplit('/').next().unwrap_or("") {
                    "infer" | "classify" => ApiGroup::Inference,
                    "ready" => ApiGroup::Health,
                    "config" => ApiGroup::ModelConfig,
                    "stats" => ApiGroup::Statistics,
                    _ => ApiGroup::Metadata,
                }
            }
            // Anything else under /v2 is at least metadata.
            _ => ApiGroup::Metadata,
        };
        Some(group)
    }

    /// The group of a gRPC method path, `/inference.GRPCInferenceService/<Method>`.
    pub fn of_grpc_path(path: &str) -> ApiGroup {
        match path.rsplit('/').next().unwrap_or("") {
            "ServerLive" | "ServerReady" | "ModelReady" => ApiGroup::Health,
            "ModelInfer" | "ModelStreamInfer" => ApiGroup::Inference,
            "ModelConfig" => ApiGroup::ModelConfig,
            "ModelStatistics" => ApiGroup::Statistics,
            "RepositoryIndex" | "RepositoryModelLoad" | "RepositoryModelUnload" => {
                ApiGroup::ModelRepository
            }
            "TraceSetting" => ApiGroup::Trace,
            "LogSettings" => ApiGroup::Logging,
            method if method.contains("SharedMemory") => ApiGroup::SharedMemory,
            // ServerMetadata, ModelMetadata, and any method unknown to this table.
            _ => ApiGroup::Metadata,
        }
    }
}

impl fmt::Display for ApiGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ApiGroup {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        ApiGroup::ALL
            .into_iter()
            .find(|g| g.name() == name.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = ApiGroup::ALL.iter().map(|g| g.name()).collect();
                format!("unknown API '{name}' (APIs: {})", names.join(", "))
            })
    }
}

/// Groups that need a header: `GROUP[,GROUP...]:HEADER=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    groups: Vec<ApiGroup>,
    header: HeaderName,
    value: String,
}

impl FromStr for Restriction {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let expected = "expected GROUP[,GROUP...]:HEADER=VALUE";
        let (groups, key) = text
            .split_once(':')
            .ok_or_else(|| format!("'{text}': {expected}"))?;
        let (header, value) = key
            .split_once('=')
            .ok_or_else(|| format!("'{text}': {expected}"))?;
        let header = HeaderName::from_str(header.trim())
            .map_err(|_| format!("'{header}' is not a header name"))?;
        if value.is_empty() {
            return Err(format!("'{text}': the value must not be empty"));
        }
        let groups = groups
            .split(',')
            .map(ApiGroup::from_str)
            .collect::<Result<Vec<_>, _>>()?;
        if groups.contains(&ApiGroup::Health) {
            return Err(
                "health cannot be restricted: probes and load balancers carry no keys".into(),
            );
        }
        Ok(Restriction {
            groups,
            header,
            value: value.to_string(),
        })
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The group needs a key the request did not carry (401 / UNAUTHENTICATED).
    NoKey(String),
    /// A browser page of another origin asked for a state change (403).
    CrossOrigin(String),
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::NoKey(message) | Denied::CrossOrigin(message) => f.write_str(message),
        }
    }
}

/// The access rules of a server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessRules {
    restrictions: Vec<Restriction>,
    /// Origins whose pages may call the server across origins (CORS), `*` for any.
    pub cors_origins: Vec<String>,
}

impl AccessRules {
    /// Rules from the restrictions; a group restricted twice is an error, as in Triton,
    /// unless by the same restriction (given for HTTP and for gRPC, say).
    pub fn new(restrictions: Vec<Restriction>, cors_origins: Vec<String>) -> Result<Self, String> {
        let mut unique: Vec<Restriction> = Vec::new();
        for restriction in restrictions {
            if !unique.contains(&restriction) {
                unique.push(restriction);
            }
        }
        let restrictions = unique;
        let mut seen = Vec::new();
        for group in restrictions.iter().flat_map(|r| &r.groups) {
            if seen.contains(group) {
                return Err(format!("API '{group}' is restricted more than once"));
            }
            seen.push(*group);
        }
        Ok(AccessRules {
            restrictions,
            cors_origins,
        })
    }

    /// Whether any API group needs a key.
    pub fn restricts(&self) -> bool {
        !self.restrictions.is_empty()
    }

    /// Whether a request with `headers` may call `group`.
    pub fn check(&self, group: ApiGroup, headers: &HeaderMap) -> Result<(), Denied> {
        let Some(restriction) = self.restrictions.iter().find(|r| r.groups.contains(&group)) else {
            return Ok(());
        };
        let named = headers
            .get_all(&restriction.header)
            .iter()
            .any(|v| same(v.as_bytes(), restriction.value.as_bytes()));
        let bearer = headers.get_all(AUTHORIZATION).iter().any(|v| {
            v.as_bytes()
                .strip_prefix(b"Bearer ")
                .is_some_and(|token| same(token, restriction.value.as_bytes()))
        });
        if named || bearer {
            Ok(())
        } else {
            Err(Denied::NoKey(format!(
                "This API is restricted, expecting header '{}' (or Authorization: Bearer): API '{group}' needs a key",
                restriction.header
            )))
        }
    }

    /// Refuses a state-changing HTTP request that a browser page of another origin
    /// sent: repository control and shared-memory registration.
    pub fn check_origin(
        &self,
        group: ApiGroup,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<(), Denied> {
        let changes_state = matches!(group, ApiGroup::ModelRepository | ApiGroup::SharedMemory)
            && method != Method::GET
            && method != Method::HEAD;
        let Some(origin) = headers.get(ORIGIN) else {
            return Ok(());
        };
        if !changes_state || self.allows_origin(origin.as_bytes()) {
            return Ok(());
        }
        Err(Denied::CrossOrigin(format!(
            "API '{group}' refuses requests from browser pages (Origin: {}); allow the origin with --cors-allow-origin",
            String::from_utf8_lossy(origin.as_bytes())
        )))
    }

    /// Whether pages of `origin` may call the server (`--cors-allow-origin`).
    pub fn allows_origin(&self, origin: &[u8]) -> bool {
        self.cors_origins
            .iter()
            .any(|o| o == "*" || o.as_bytes() == origin)
    }
}

/// Compares a secret in time that depends only on the lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_str(k).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn restrictions_parse_as_triton_writes_them() {
        let r: Restriction = "model-repository,statistics:admin-key=s3cret"
            .parse()
            .unwrap();
        assert_eq!(
            r.groups,
            vec![ApiGroup::ModelRepository, ApiGroup::Statistics]
        );
        assert_eq!(r.header, "admin-key");
        assert_eq!(r.value, "s3cret");
        for bad in [
            "inference",
            "inference:key",
            "inference:key=",
            "infer:key=v",
            "health:key=v",
            "inference:bad header=v",
        ] {
            assert!(bad.parse::<Restriction>().is_err(), "{bad}");
        }
        let twice = vec![
            "inference:a=1".parse().unwrap(),
            "statistics,inference:b=2".parse().unwrap(),
        ];
        assert!(AccessRules::new(twice, vec![]).is_err());
    }

    #[test]
    fn a_restricted_group_needs_its_key_and_others_stay_open() {
        let rules = AccessRules::new(
            vec![
                "inference:x-api-key=k1".parse().unwrap(),
                "model-repository:admin-key=k2".parse().unwrap(),
            ],
            vec![],
        )
        .unwrap();
        let none = headers(&[]);
        assert!(matches!(
            rules.check(ApiGroup::Inference, &none),
            Err(Denied::NoKey(_))
        ));
        assert!(rules
            .check(ApiGroup::Inference, &headers(&[("x-api-key", "k1")]))
            .is_ok());
        assert!(rules
            .check(
                ApiGroup::Inference,
                &headers(&[("authorization", "Bearer k1")])
            )
            .is_ok());
        // The other group's key, a wrong key, a prefix of the key: refused.
        for wrong in [
            ("x-api-key", "k2"),
            ("x-api-key", "k"),
            ("authorization", "Bearer k2"),
        ] {
            assert!(
                rules
                    .check(ApiGroup::Inference, &headers(&[wrong]))
                    .is_err(),
                "{wrong:?}"
            );
        }
        assert!(rules
            .check(ApiGroup::ModelRepository, &headers(&[("admin-key", "k2")]))
            .is_ok());
        assert!(rules.check(ApiGroup::Health, &none).is_ok());
        assert!(rules.check(ApiGroup::Metadata, &none).is_ok());
    }

    #[test]
    fn routes_and_methods_fall_into_the_same_groups() {
        for (path, method, group) in [
            ("/v2/health/ready", "ServerReady", ApiGroup::Health),
            ("/v2/models/m/ready", "ModelReady", ApiGroup::Health),
            ("/v2", "ServerMetadata", ApiGroup::Metadata),
            (
                "/v2/models/m/versions/1",
                "ModelMetadata",
                ApiGroup::Metadata,
            ),
            ("/v2/models/m/infer", "ModelInfer", ApiGroup::Inference),
            (
                "/v2/models/m/versions/2/infer",
                "ModelStreamInfer",
                ApiGroup::Inference,
            ),
            ("/v2/models/m/config", "ModelConfig", ApiGroup::ModelConfig),
            ("/v2/models/stats", "ModelStatistics", ApiGroup::Statistics),
            (
                "/v2/repository/index",
                "RepositoryIndex",
                ApiGroup::ModelRepository,
            ),
            (
                "/v2/repository/models/m/load",
                "RepositoryModelLoad",
                ApiGroup::ModelRepository,
            ),
            (
                "/v2/systemsharedmemory/region/r/register",
                "SystemSharedMemoryRegister",
                ApiGroup::SharedMemory,
            ),
        ] {
            assert_eq!(ApiGroup::of_http_path(path), Some(group), "{path}");
            let grpc = format!("/inference.GRPCInferenceService/{method}");
            assert_eq!(ApiGroup::of_grpc_path(&grpc), group, "{method}");
        }
        assert_eq!(
            ApiGroup::of_http_path("/v2/models/m/classify"),
            Some(ApiGroup::Inference)
        );
        assert_eq!(ApiGroup::of_http_path("/"), None);
    }

    #[test]
    fn browser_pages_of_other_origins_cannot_change_state() {
        let rules = AccessRules::default();
        let page = headers(&[
            ("origin", "http://evil.example"),
            ("content-type", "text/plain"),
        ]);
        assert!(matches!(
            rules.check_origin(ApiGroup::ModelRepository, &Method::POST, &page),
            Err(Denied::CrossOrigin(_))
        ));
        // Reading, inference, and clients that are not browsers: allowed.
        assert!(rules
            .check_origin(ApiGroup::Inference, &Method::POST, &page)
            .is_ok());
        assert!(rules
            .check_origin(ApiGroup::ModelRepository, &Method::GET, &page)
            .is_ok());
        assert!(rules
            .check_origin(ApiGroup::ModelRepository, &Method::POST, &headers(&[]))
            .is_ok());
        let allowed = AccessRules::new(vec![], vec!["http://evil.example".into()]).unwrap();
        assert!(allowed
            .check_origin(ApiGroup::ModelRepository, &Method::POST, &page)
            .is_ok());
    }
}
