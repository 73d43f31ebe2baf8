# Shared by the tools/*.sh scripts. Source it; it defines functions only.

# publish_dir TMP DEST PARENT NAME: atomically moves a finished TMP directory to DEST, replacing an
# incomplete or forced earlier one, so readers never see a half-written cache entry.
publish_dir() {
  local tmp="$1" dest="$2" parent="$3" name="$4" old
  if [[ -e "$dest" ]]; then
    old="$(mktemp -d "$parent/.$name.old.XXXXXX")"
    mv -T "$dest" "$old/entry"
    mv -T "$tmp" "$dest"
    rm -rf "$old"
  else
    mv -T "$tmp" "$dest"
  fi
}

# begin_build RESULT: the build-once start shared by build-assets.sh and build-clusterctl.sh. The
# caller sets NAME and defines `cached` (true when $DEST holds a complete result). When the result
# is cached (before or after waiting for another build of it) this prints $DEST$RESULT and exits 0;
# otherwise it returns holding the build lock, with stale leftovers removed, a fresh $TMP and the
# cleanup and signal traps installed. Sets CACHE_ROOT, DEST, MARKER, TMP and CHILD (the build
# process to stop on a signal; the caller sets it).
begin_build() {
  local result="$1"
  CACHE_ROOT="${CAIRN_ASSETS_CACHE:-${HOME:?HOME is not set}/.cache/cairn/assets}"
  DEST="$CACHE_ROOT/$NAME"
  MARKER=".complete"
  if [[ "${CAIRN_ASSETS_FORCE:-0}" != 1 ]] && cached; then
    printf '%s\n' "$DEST$result"
    exit 0
  fi
  mkdir -p "$CACHE_ROOT"
  exec 9>"$CACHE_ROOT/.$NAME.lock"
  if ! flock -n 9; then
    log "another build of $NAME is running; waiting for it"
    flock 9
  fi
  # Someone else may have finished the build while we waited.
  if [[ "${CAIRN_ASSETS_FORCE:-0}" != 1 ]] && cached; then
    printf '%s\n' "$DEST$result"
    exit 0
  fi
  command -v go >/dev/null || die "go is not installed"
  # We hold the lock, so leftovers of earlier builds (killed with SIGKILL, power loss) are stale.
  rm -rf "$CACHE_ROOT/.$NAME.tmp."* "$CACHE_ROOT/.$NAME.old."*
  TMP="$(mktemp -d "$CACHE_ROOT/.$NAME.tmp.XXXXXX")"
  CHILD=""
  trap 'rm -rf "$TMP"' EXIT
  trap interrupt_build INT TERM HUP
}

interrupt_build() {
  if [[ -n "$CHILD" ]]; then
    kill -TERM "$CHILD" 2>/dev/null || true
    wait "$CHILD" 2>/dev/null || true
  fi
  log "interrupted; nothing was published"
  exit 130
}
