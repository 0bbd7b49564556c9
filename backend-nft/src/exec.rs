//! Running `nft` with an input on stdin and its stderr kept for errors
//! (the `nftables` crate's own helper drops nft's stderr).

use crate::{to_json_compact, to_nft_text, NftArtefact, NftError};
use std::io::Write;
use std::process::{Command, Stdio};

/// The `nft` command, on this host or inside a network namespace
/// (`ip netns exec NAME nft …`). Arguments are passed as a vector, never
/// through a shell.
///
/// ```no_run
/// use backend_nft::{Nft, NftRenderer};
/// use microseg_core::{backend::Renderer, ir::{compile, Target}, Policy};
/// let policy = Policy::from_file("examples/three-tier.toml")?;
/// let artefact = NftRenderer.render(&compile(&policy, &Target::Role("web".into()))?)?;
/// let nft = Nft::in_netns("lab-web");
/// nft.check_json(&artefact)?; // nft -j -c -f -
/// nft.apply_json(&artefact)?; // nft -j -f -
/// let table = nft.list_table(artefact.table())?;
/// # let _ = table;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nft {
    netns: Option<String>,
}

impl Nft {
    /// `nft` on this host.
    ///
    /// ```
    /// let nft = backend_nft::Nft::host();
    /// assert_eq!(nft.command_line(&["list", "tables"]), "nft list tables");
    /// ```
    pub fn host() -> Nft {
        Nft { netns: None }
    }

    /// `nft` inside the network namespace `name` (through `ip netns exec`).
    ///
    /// ```
    /// let nft = backend_nft::Nft::in_netns("lab1");
    /// assert_eq!(nft.command_line(&["-c", "-f", "-"]), "ip netns exec lab1 nft -c -f -");
    /// ```
    pub fn in_netns(name: impl Into<String>) -> Nft {
        Nft {
            netns: Some(name.into()),
        }
    }

    /// The network namespace nft runs in (`None`: this host's).
    ///
    /// ```
    /// assert_eq!(backend_nft::Nft::in_netns("lab1").netns(), Some("lab1"));
    /// assert_eq!(backend_nft::Nft::host().netns(), None);
    /// ```
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    fn argv<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut v = Vec::with_capacity(args.len() + 5);
        if let Some(ns) = &self.netns {
            v.extend(["ip", "netns", "exec", ns.as_str()]);
        }
        v.push("nft");
        v.extend_from_slice(args);
        v
    }

    /// The command line `run` executes, for messages.
    ///
    /// ```
    /// assert_eq!(backend_nft::Nft::host().command_line(&["-j", "-f", "-"]), "nft -j -f -");
    /// ```
    pub fn command_line(&self, args: &[&str]) -> String {
        self.argv(args).join(" ")
    }

    /// Runs nft with `args`, writing `input` to its stdin; returns stdout.
    /// On failure the error carries the command line and nft's stderr.
    ///
    /// ```no_run
    /// let out = backend_nft::Nft::host().run(&["-j", "list", "tables"], None)?;
    /// # let _ = out;
    /// # Ok::<(), backend_nft::NftError>(())
    /// ```
    pub fn run(&self, args: &[&str], input: Option<&str>) -> Result<String, NftError> {
        let argv = self.argv(args);
        let command = argv.join(" ");
        let mut child = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| NftError::Spawn {
                command: command.clone(),
                source,
            })?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            // nft reads its whole input before it writes anything, so this cannot deadlock.
            stdin
                .write_all(text.as_bytes())
                .map_err(|source| NftError::Spawn {
                    command: command.clone(),
                    source,
                })?;
        }
        let out = child.wait_with_output().map_err(|source| NftError::Spawn {
            command: command.clone(),
            source,
        })?;
        if !out.status.success() {
            return Err(NftError::Command {
                command,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim_end().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Checks the JSON document without loading it (`nft -j -c -f -`).
    ///
    /// ```no_run
    /// # let artefact: backend_nft::NftArtefact = unimplemented!();
    /// backend_nft::Nft::in_netns("lab1").check_json(&artefact)?;
    /// # Ok::<(), backend_nft::NftError>(())
    /// ```
    pub fn check_json(&self, artefact: &NftArtefact) -> Result<(), NftError> {
        self.run(&["-j", "-c", "-f", "-"], Some(&to_json_compact(artefact)))
            .map(drop)
    }

    /// Checks the nft script without loading it (`nft -c -f -`).
    ///
    /// ```no_run
    /// # let artefact: backend_nft::NftArtefact = unimplemented!();
    /// backend_nft::Nft::in_netns("lab1").check_text(&artefact)?;
    /// # Ok::<(), backend_nft::NftError>(())
    /// ```
    pub fn check_text(&self, artefact: &NftArtefact) -> Result<(), NftError> {
        self.run(&["-c", "-f", "-"], Some(&to_nft_text(artefact)))
            .map(drop)
    }

    /// Loads the JSON document, atomically (`nft -j -f -`).
    ///
    /// ```no_run
    /// # let artefact: backend_nft::NftArtefact = unimplemented!();
    /// backend_nft::Nft::in_netns("lab1").apply_json(&artefact)?;
    /// # Ok::<(), backend_nft::NftError>(())
    /// ```
    pub fn apply_json(&self, artefact: &NftArtefact) -> Result<(), NftError> {
        self.run(&["-j", "-f", "-"], Some(&to_json_compact(artefact)))
            .map(drop)
    }

    /// Loads the nft script, atomically (`nft -f -`).
    ///
    /// ```no_run
    /// # let artefact: backend_nft::NftArtefact = unimplemented!();
    /// backend_nft::Nft::in_netns("lab1").apply_text(&artefact)?;
    /// # Ok::<(), backend_nft::NftError>(())
    /// ```
    pub fn apply_text(&self, artefact: &NftArtefact) -> Result<(), NftError> {
        self.run(&["-f", "-"], Some(&to_nft_text(artefact)))
            .map(drop)
    }

    /// The whole ruleset without the elements of named sets, as libnftables
    /// JSON (`nft -t -j list ruleset`): the cheap listing (milliseconds where
    /// `list table` of a table with 100,000s of set elements takes seconds;
    /// nft 1.0.6 skips set elements only for `list ruleset`). Read as plain
    /// JSON, so objects of other tables are only skipped, never interpreted.
    ///
    /// ```no_run
    /// let r = backend_nft::Nft::in_netns("lab1").list_ruleset_terse()?;
    /// assert!(r["nftables"].is_array());
    /// # Ok::<(), backend_nft::NftError>(())
    /// ```
    pub fn list_ruleset_terse(&self) -> Result<serde_json::Value, NftError> {
        let args = ["-t", "-j", "list", "ruleset"];
        let out = self.run(&args, None)?;
        serde_json::from_str(&out).map_err(|source| NftError::Output {
            command: self.command_line(&args),
            source,
        })
    }

    /// Lists one table of family `inet` as libnftables JSON
    /// (`nft -j list table inet NAME`); `None` if it does not exist.
    /// Only the policy's own table is listed: listing the whole ruleset
    /// could meet objects the schema does not model.
    ///
    /// ```no_run
    /// let table = backend_nft::Nft::in_netns("lab1").list_table("microseg")?;
    /// assert!(table.is_some_and(|t| t["nftables"].is_array()));
    /// # Ok::<(), backend_nft::NftError>(())
    /// ```
    pub fn list_table(&self, table: &str) -> Result<Option<serde_json::Value>, NftError> {
        let args = ["-j", "list", "table", "inet", table];
        match self.run(&args, None) {
            Ok(out) => serde_json::from_str(&out)
                .map(Some)
                .map_err(|source| NftError::Output {
                    command: self.command_line(&args),
                    source,
                }),
            Err(NftError::Command { stderr, .. })
                if stderr.contains("No such file or directory") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}
