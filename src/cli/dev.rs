//! `segl dev …`: the development PKI, the development client, and `up`.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};

use crate::config::Config;
use crate::dev::client::{CertHash, DevClient, RequestOptions};
use crate::dev::oio::CardPlacement;
use crate::dev::pki::{self, Identity};
use crate::time::DgwsVersion;
use crate::token::CardType;
use crate::xml::dsig::algorithm::SignatureAlgorithm;

/// Development commands.
#[derive(Subcommand)]
pub(super) enum DevCommand {
    /// Create whatever is missing of the development state: SoftHSM tokens, development PKI,
    /// the STS key and its certificate.
    Setup {
        /// Configuration file.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
    },
    /// `setup`, then `serve`: the one command that brings segl up on the embedded default.
    Up {
        /// Configuration file.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
    },
    /// Write a fresh DGWS request with a self-signed ID card to stdout (or --out).
    Request {
        /// Configuration file.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
        /// Card type.
        #[arg(long, value_enum, default_value = "user")]
        card: CardArg,
        /// The client's signature algorithm.
        #[arg(long, value_enum, default_value = "rsa-sha1")]
        alg: AlgArg,
        /// Signing identity (default: moces for user cards, voces for system cards).
        #[arg(long)]
        identity: Option<String>,
        /// DGWS version.
        #[arg(long, value_enum, default_value = "1.0.1")]
        dgws: DgwsArg,
        /// Make a card whose validity ended an hour ago.
        #[arg(long)]
        expired: bool,
        /// Output file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write a Sosi2OIOSaml request (as unsealed sends it) presenting the STS-signed card of a
    /// NewSecurityTokenService response, to stdout (or --out).
    Sosi2oiosaml {
        /// The DGWS response holding the STS-signed user card.
        #[arg(long)]
        card_from: PathBuf,
        /// The audience (`wsp:AppliesTo`).
        #[arg(long, default_value = crate::dev::audience::DEV_AUDIENCE)]
        audience: String,
        /// Put the card in the header's wsse:Security (seal's option) instead of in ActAs.
        #[arg(long)]
        card_in_header: bool,
        /// Output file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write a BST2SOSI request: a bootstrap token minted by the development IdP, holder-of-key
    /// bound to the signing system, the request header-signed by it (RSA-SHA256, as unsealed).
    Bst2sosi {
        /// Configuration file.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
        /// Token profile: OIOH3BST, OIOH2BST or OIO3BST.
        #[arg(long, default_value = "OIOH3BST")]
        profile: String,
        /// The token's issuer (default: the embedded configuration's issuer of that profile).
        #[arg(long)]
        issuer: Option<String>,
        /// The system that holds the token and signs the request.
        #[arg(long, default_value = "voces")]
        signer: String,
        /// `medcom:ITSystemName` claim.
        #[arg(long, default_value = "Testby Journal")]
        it_system: String,
        /// `medcom:UserAuthorizationCode` claim.
        #[arg(long)]
        authorization_code: Option<String>,
        /// `medcom:UserRole` claim.
        #[arg(long)]
        role: Option<String>,
        /// Encrypt the token to the STS's encryption certificate (aes128-cbc + rsa-1_5, as the
        /// .NET client sends it): a `saml:EncryptedAssertion` in ActAs.
        #[arg(long)]
        encrypt: bool,
        /// Output file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write a Bst2Idws request: a citizen's bootstrap token minted by the development IdP,
    /// holder-of-key bound to the signing system, with the CPR claim (and optionally
    /// OnBehalfOf), header-signed by that system.
    Bst2idws {
        /// Configuration file.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
        /// Token profile: OIO3BST_CITIZEN, OIO2BST_CITIZEN, NEMLOGIN_BST or LEGACY_BEARER.
        #[arg(long, default_value = "OIO3BST_CITIZEN")]
        profile: String,
        /// The token's issuer (default: the configuration's citizen issuer of that profile).
        #[arg(long)]
        issuer: Option<String>,
        /// The system that holds the token and signs the request.
        #[arg(long, default_value = "voces")]
        signer: String,
        /// The identity token's audience (`wsp:AppliesTo`).
        #[arg(long, default_value = "https://fmk")]
        audience: String,
        /// The CPR claim (default: the development citizen's).
        #[arg(long, default_value = crate::dev::pki::DEV_CITIZEN_CPR)]
        cpr: String,
        /// An OnBehalfOf claim value, e.g.
        /// `urn:dk:healthcare:saml:actThroughProcurationBy:cprNumberIdentifier:0707614285`.
        #[arg(long)]
        on_behalf_of: Option<String>,
        /// Encrypt the token to the STS's encryption certificate.
        #[arg(long)]
        encrypt: bool,
        /// Output file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write a JWT2Idws (or JWT2OIOSaml) request: a JWT of the development JWT issuer for the
    /// development citizen in ActAs, the CPR claim, header-signed by the signing system.
    Jwt2idws {
        /// Configuration file.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
        /// The system that signs the request.
        #[arg(long, default_value = "voces")]
        signer: String,
        /// The audience (`wsp:AppliesTo`, and the JWT's `aud`).
        #[arg(long, default_value = "https://fmk")]
        audience: String,
        /// An OnBehalfOf claim value.
        #[arg(long)]
        on_behalf_of: Option<String>,
        /// Output file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write an OIOSaml2Sosi request: a NemLog-in-like OIOSAML 2.0 assertion minted by the
    /// development IdP and a context token, header-signed by the development VOCES system.
    Oiosaml2sosi {
        /// Configuration file.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
        /// The context token's IT system.
        #[arg(long, default_value = "Testby Journal")]
        it_system: String,
        /// The context token's education code (the role).
        #[arg(long, default_value = "")]
        education_code: String,
        /// The context token's authorisation code.
        #[arg(long, default_value = "")]
        authorization_code: String,
        /// Output file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write a JWT of the development JWT issuer (JTP-H-like, for the development citizen,
    /// valid for an hour) to stdout, creating the issuer's key and JWKS if missing.
    Jwt {
        /// Configuration file.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
        /// The token's audience (`aud`; JWT2Idws and JWT2OIOSaml compare it with AppliesTo).
        #[arg(long, default_value = crate::dev::audience::DEV_AUDIENCE)]
        audience: String,
        /// Make a token that expired an hour ago.
        #[arg(long)]
        expired: bool,
        /// The citizen's CPR number (default: the development citizen's).
        #[arg(long)]
        cpr: Option<String>,
    },
}

/// Card type.
#[derive(Clone, Copy, ValueEnum)]
pub(super) enum CardArg {
    User,
    System,
}

/// Client signature algorithm.
#[derive(Clone, Copy, ValueEnum)]
pub(super) enum AlgArg {
    #[value(name = "rsa-sha1")]
    RsaSha1,
    #[value(name = "rsa-sha256")]
    RsaSha256,
}

/// DGWS version.
#[derive(Clone, Copy, ValueEnum)]
pub(super) enum DgwsArg {
    #[value(name = "1.0")]
    V1_0,
    #[value(name = "1.0.1")]
    V1_0_1,
}

impl DevCommand {
    /// Runs the command.
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        match self {
            DevCommand::Setup { config } => setup(&Config::load(&config)?),
            DevCommand::Up { config: path } => {
                let config = Config::load(&path)?;
                setup(&config)?;
                crate::server::run(path, config)?;
                Ok(())
            }
            DevCommand::Request { config, card, alg, identity, dgws, expired, out } => {
                let config = Config::load(&config)?;
                let client = DevClient::open(&config)?;
                let mut opts = RequestOptions::new(match card {
                    CardArg::User => CardType::User,
                    CardArg::System => CardType::System,
                });
                opts.algorithm = match alg {
                    AlgArg::RsaSha1 => SignatureAlgorithm::RsaSha1,
                    AlgArg::RsaSha256 => SignatureAlgorithm::RsaSha256,
                };
                if matches!(alg, AlgArg::RsaSha256) {
                    opts.cert_hash = CertHash::Sha256;
                }
                opts.version = match dgws {
                    DgwsArg::V1_0 => DgwsVersion::V1_0,
                    DgwsArg::V1_0_1 => DgwsVersion::V1_0_1,
                };
                if let Some(label) = identity {
                    opts.identity = Some(Identity::from_label(&label).ok_or_else(|| {
                        let known: Vec<_> = pki::ALL.iter().map(|i| i.label()).collect();
                        format!("unknown identity {label:?}; known: {}", known.join(", "))
                    })?);
                }
                if expired {
                    opts.not_before_offset = jiff::SignedDuration::from_hours(-25);
                }
                write_out(out, &client.request(&opts)?)
            }
            DevCommand::Sosi2oiosaml { card_from, audience, card_in_header, out } => {
                let card = crate::dev::oio::issued_card(&std::fs::read(&card_from)?)?;
                let placement = if card_in_header { CardPlacement::Header } else { CardPlacement::ActAs };
                write_out(out, &crate::dev::oio::sosi2oiosaml_request(&card, &audience, placement))
            }
            DevCommand::Bst2sosi {
                config,
                profile,
                issuer,
                signer,
                it_system,
                authorization_code,
                role,
                encrypt,
                out,
            } => {
                use crate::token::bootstrap::TokenProfile;
                let config = Config::load(&config)?;
                let client = DevClient::open(&config)?;
                let profile =
                    TokenProfile::from_name(&profile).filter(|p| !p.is_citizen()).ok_or_else(|| {
                        format!("unknown token profile {profile:?}; OIOH3BST, OIOH2BST or OIO3BST")
                    })?;
                let issuer = issuer_of(&config.bst2sosi.issuer, profile, issuer)?;
                let signer = identity(&signer)?;
                let spec =
                    crate::dev::oio::BootstrapSpec::new(profile, &issuer, Some(client.certificate(signer)?));
                let mut token = crate::dev::oio::bootstrap_token(&client, &spec)?;
                if encrypt {
                    token = encrypt_to_sts(&config, &token)?;
                }
                let mut claims = vec![("medcom:ITSystemName", it_system.as_str())];
                if let Some(code) = &authorization_code {
                    claims.push(("medcom:UserAuthorizationCode", code));
                }
                if let Some(role) = &role {
                    claims.push(("medcom:UserRole", role));
                }
                write_out(out, &crate::dev::oio::bst2sosi_request(&client, &token, &claims, signer)?)
            }
            DevCommand::Bst2idws {
                config,
                profile,
                issuer,
                signer,
                audience,
                cpr,
                on_behalf_of,
                encrypt,
                out,
            } => {
                use crate::token::bootstrap::TokenProfile;
                let config = Config::load(&config)?;
                let client = DevClient::open(&config)?;
                let profile =
                    TokenProfile::from_name(&profile).filter(|p| p.is_citizen()).ok_or_else(|| {
                        format!(
                            "unknown citizen token profile {profile:?}; {}",
                            TokenProfile::CITIZEN.map(TokenProfile::name).join(", ")
                        )
                    })?;
                let issuer = issuer_of(&config.idws.issuer, profile, issuer)?;
                let signer = identity(&signer)?;
                let spec = crate::dev::oio::BootstrapSpec::citizen(
                    profile,
                    &issuer,
                    Some(client.certificate(signer)?),
                );
                let mut token = crate::dev::oio::bootstrap_token(&client, &spec)?;
                if encrypt {
                    token = encrypt_to_sts(&config, &token)?;
                }
                let mut claims = vec![(crate::exchange::oio::citizen::CLAIM_CPR, cpr.as_str())];
                if let Some(value) = &on_behalf_of {
                    claims.push((crate::exchange::oio::citizen::CLAIM_ON_BEHALF_OF, value));
                }
                write_out(out, &crate::dev::oio::oio_request(&client, &[&token], &claims, &audience, signer)?)
            }
            DevCommand::Jwt { config, audience, expired, cpr } => {
                let config = Config::load(&config)?;
                let dev = config.dev.as_ref().ok_or("the configuration has no [dev] section")?;
                let pki_dir = dev.state_dir.join("pki");
                for line in crate::dev::jwt::ensure(&pki_dir)? {
                    eprintln!("created {line}");
                }
                let mut spec = crate::dev::jwt::JwtSpec::citizen(&audience);
                if expired {
                    spec.issued_at = Some(jiff::SignedDuration::from_hours(-2));
                    spec.expires_in = Some(jiff::SignedDuration::from_hours(-1));
                }
                if let Some(cpr) = cpr {
                    spec.cpr = Some(cpr);
                }
                let mut token = crate::dev::jwt::sign(&pki_dir, &spec)?;
                token.push('\n');
                write_out(None, token.as_bytes())
            }
            DevCommand::Jwt2idws { config, signer, audience, on_behalf_of, out } => {
                let config = Config::load(&config)?;
                let client = DevClient::open(&config)?;
                let dev = config.dev.as_ref().ok_or("the configuration has no [dev] section")?;
                let jwt = crate::dev::jwt::sign(
                    &dev.state_dir.join("pki"),
                    &crate::dev::jwt::JwtSpec::citizen(&audience),
                )?;
                let token = crate::dev::jwt::binary_security_token(&jwt);
                let signer = identity(&signer)?;
                let mut claims =
                    vec![(crate::exchange::oio::citizen::CLAIM_CPR, crate::dev::pki::DEV_CITIZEN_CPR)];
                if let Some(value) = &on_behalf_of {
                    claims.push((crate::exchange::oio::citizen::CLAIM_ON_BEHALF_OF, value));
                }
                write_out(out, &crate::dev::oio::oio_request(&client, &[&token], &claims, &audience, signer)?)
            }
            DevCommand::Oiosaml2sosi { config, it_system, education_code, authorization_code, out } => {
                let client = DevClient::open(&Config::load(&config)?)?;
                let assertion =
                    crate::dev::oio::nemlogin_assertion(&client, &crate::dev::oio::NemLoginSpec::new())?;
                let context =
                    crate::dev::oio::context_token(&it_system, &education_code, &authorization_code);
                let request =
                    crate::dev::oio::oiosaml2sosi_request(&client, &assertion, &context, Identity::Voces)?;
                write_out(out, &request)
            }
        }
    }
}

/// Writes a request to `out`, or to stdout.
fn write_out(out: Option<PathBuf>, request: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    match out {
        Some(path) => std::fs::write(&path, request)?,
        None => std::io::Write::write_all(&mut std::io::stdout(), request)?,
    }
    Ok(())
}

fn setup(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    let report = pki::setup(config)?;
    if report.created.is_empty() && report.skipped.is_empty() {
        eprintln!("development state complete; nothing to create");
    }
    for line in report.created {
        eprintln!("created {line}");
    }
    for line in report.skipped {
        eprintln!("skipped {line}");
    }
    Ok(())
}

/// The issuer named on the command line, else the configured one of `profile`.
fn issuer_of(
    configured: &[crate::config::TrustedIdpConfig],
    profile: crate::token::bootstrap::TokenProfile,
    named: Option<String>,
) -> Result<String, String> {
    match named {
        Some(issuer) => Ok(issuer),
        None => configured.iter().find(|i| i.token_profile == profile).map(|i| i.issuer.clone()).ok_or_else(
            || format!("no configured issuer of profile {}; name one with --issuer", profile.name()),
        ),
    }
}

/// The development identity labelled `label`.
fn identity(label: &str) -> Result<Identity, String> {
    Identity::from_label(label).ok_or_else(|| format!("unknown identity {label:?}"))
}

/// Encrypts a development token to the STS's encryption certificate (`hsm.decryption_key`),
/// aes128-cbc + rsa-1_5 as the .NET client sends it: a `saml:EncryptedAssertion` for ActAs.
fn encrypt_to_sts(config: &Config, token: &[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let label = config.hsm.decryption_key.as_deref().ok_or("hsm.decryption_key is not configured")?;
    let dev = config.dev.as_ref().ok_or("the configuration has no [dev] section")?;
    let cert = crate::dev::client::read_certificate(&dev.state_dir.join("pki").join(format!("{label}.pem")))?;
    Ok(crate::xml::enc::encrypt_assertion(
        token,
        &cert,
        crate::xml::enc::ContentEncryption::Aes128Cbc,
        crate::xml::enc::KeyTransport::Rsa1_5,
    )?)
}
