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
