//! A container's security settings, as containerd's CRI sets them:
//! capabilities (CRI's `ALL` and single names), the user and groups
//! resolved in the image's rootfs, the seccomp profile (containerd's
//! default, a local file, or none), and AppArmor (which berth does not
//! load: only `unconfined` is accepted).

use berth_core::{Error, Result};
use berth_oci::spec::Capabilities;
use berth_oci::{opts, Spec};
use k8s_cri::v1::{
    security_profile::ProfileType, Capability, LinuxContainerSecurityContext, SecurityProfile,
};
use std::path::Path;

/// containerd's CRI `WithCapabilities`: `ALL` in add sets every known
/// capability first, `ALL` in drop clears them first; then single names
/// (CRI's have no `CAP_` prefix) are added to or dropped from the
/// bounding, effective and permitted sets.
pub(crate) fn with_capabilities(spec: &mut Spec, caps: &Capability) {
    let is_all = |c: &String| c.eq_ignore_ascii_case("ALL");
    let full = |c: &String| format!("CAP_{}", c.to_ascii_uppercase());
    let process = spec.process_mut();
    let set = process
        .capabilities
        .get_or_insert_with(Capabilities::default);
    let mut sets = |f: &mut dyn FnMut(&mut Vec<String>)| {
        f(&mut set.bounding);
        f(&mut set.effective);
        f(&mut set.permitted);
    };
    if caps.add_capabilities.iter().any(is_all) {
        let all = opts::current_capabilities();
        sets(&mut |s| *s = all.clone());
    }
    if caps.drop_capabilities.iter().any(is_all) {
        sets(&mut |s| s.clear());
    }
    for cap in caps
        .add_capabilities
        .iter()
        .filter(|c| !is_all(c))
        .map(full)
    {
        sets(&mut |s| {
            if !s.contains(&cap) {
                s.push(cap.clone());
            }
        });
    }
    for cap in caps
        .drop_capabilities
        .iter()
        .filter(|c| !is_all(c))
        .map(full)
    {
        sets(&mut |s| s.retain(|c| *c != cap));
    }
}

/// CRI's user string (`generateUserString`): the name or uid, with the
/// gid after a colon; a gid without a user is an error.
pub(crate) fn user_string(security: &LinuxContainerSecurityContext) -> Result<String> {
    let mut user = security
        .run_as_user
        .as_ref()
        .map(|u| u.value.to_string())
        .unwrap_or_default();
    if !security.run_as_username.is_empty() {
        user = security.run_as_username.clone();
    }
    let group = security.run_as_group.as_ref().map(|g| g.value.to_string());
    match (user.is_empty(), group) {
        (true, Some(group)) => Err(Error::invalid_argument(format!(
            "user group {group:?} is specified without user"
        ))),
        (true, None) => Ok(String::new()),
        (false, Some(group)) => Ok(format!("{user}:{group}")),
        (false, None) => Ok(user),
    }
}

/// The user (CRI's, else the image's), resolved in the rootfs; the
/// groups of the CRI user (or of uid 0) from the rootfs's `/etc/group`,
/// merged with the supplemental groups, sorted.
pub(crate) fn with_user(
    spec: &mut Spec,
    security: &LinuxContainerSecurityContext,
    rootfs: &Path,
    image_user: &str,
) -> Result<()> {
    let mut user = user_string(security)?;
    if user.is_empty() {
        user = image_user.to_string();
    }
    if !user.is_empty() {
        let resolved = berth_oci::resolve_user(rootfs, &user)?;
        let process = spec.process_mut();
        process.user.uid = resolved.uid;
        process.user.gid = resolved.gid;
    }
    let groups_of = if security.run_as_username.is_empty() {
        security
            .run_as_user
            .as_ref()
            .map(|u| u.value)
            .unwrap_or(0)
            .to_string()
    } else {
        security.run_as_username.clone()
    };
    let mut gids = berth_oci::resolve_user(rootfs, &groups_of)
        .map(|u| u.additional_gids)
        .unwrap_or_default();
    gids.extend(security.supplemental_groups.iter().map(|g| *g as u32));
    gids.sort_unstable();
    gids.dedup();
    spec.process_mut().user.additional_gids = gids;
    Ok(())
}

/// The profile the security context asks for: the `seccomp` field, else
/// the deprecated `seccomp_profile_path` (`runtime/default`,
/// `docker/default`, `unconfined`, `localhost/<path>`); `None` for none.
#[allow(deprecated)] // the field older kubelets send
fn seccomp_profile(security: &LinuxContainerSecurityContext) -> Result<Option<SecurityProfile>> {
    if security.seccomp.is_some() {
        return Ok(security.seccomp.clone());
    }
    let path = security.seccomp_profile_path.as_str();
    let profile = |kind: ProfileType, reference: &str| SecurityProfile {
        profile_type: kind as i32,
        localhost_ref: reference.to_string(),
    };
    Ok(match path {
        "" => None,
        "runtime/default" | "docker/default" => Some(profile(ProfileType::RuntimeDefault, "")),
        "unconfined" => Some(profile(ProfileType::Unconfined, "")),
        other => match other.strip_prefix("localhost/") {
            Some(reference) => Some(profile(ProfileType::Localhost, reference)),
            None => {
                return Err(Error::invalid_argument(format!(
                    "invalid profile {other:?}"
                )))
            }
        },
    })
}

/// The seccomp profile (none for privileged containers): containerd's
/// default for `RuntimeDefault`, the file's for `Localhost`.
pub(crate) fn with_seccomp(
    spec: &mut Spec,
    security: &LinuxContainerSecurityContext,
) -> Result<()> {
    if security.privileged {
        return Ok(());
    }
    let Some(profile) = seccomp_profile(security)? else {
        return Ok(());
    };
    let kind = ProfileType::try_from(profile.profile_type)
        .map_err(|_| Error::invalid_argument("seccomp unknown ProfileType"))?;
    if kind != ProfileType::Localhost && !profile.localhost_ref.is_empty() {
        return Err(Error::invalid_argument(
            "seccomp config invalid LocalhostRef must only be set if ProfileType is Localhost",
        ));
    }
    let seccomp = match kind {
        ProfileType::Unconfined => return Ok(()),
        ProfileType::RuntimeDefault => berth_oci::seccomp::default_profile(spec),
        ProfileType::Localhost => {
            let path = profile
                .localhost_ref
                .strip_prefix("localhost/")
                .unwrap_or(&profile.localhost_ref);
            let bytes = std::fs::read(path).map_err(|e| {
                Error::invalid_argument(format!("cannot load seccomp profile {path:?}: {e}"))
            })?;
            serde_json::from_slice(&bytes).map_err(|e| {
                Error::invalid_argument(format!("decoding seccomp profile {path:?} failed: {e}"))
            })?
        }
    };
    spec.linux_mut().extra.insert("seccomp".into(), seccomp);
    Ok(())
}

/// berth does not load AppArmor profiles: asking for one other than
/// `unconfined` fails, as containerd fails where AppArmor is off.
#[allow(deprecated)] // the field older kubelets send
pub(crate) fn check_apparmor(security: &LinuxContainerSecurityContext) -> Result<()> {
    let unconfined = match &security.apparmor {
        Some(p) => p.profile_type == ProfileType::Unconfined as i32,
        None => matches!(security.apparmor_profile.as_str(), "" | "unconfined"),
    };
    let asked = security.apparmor.is_some() || !security.apparmor_profile.is_empty();
    if asked && !unconfined {
        return Err(Error::invalid_argument("apparmor is not supported"));
    }
    Ok(())
}
