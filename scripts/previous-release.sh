#!/usr/bin/env bash
# Builds the `fts` binary of the previous release from this clone's own history, for
# the compatibility test (tests/it/compat.rs), and prints its path:
# $CARGO_TARGET_DIR/previous-release/fts (target/previous-release/fts by default).
#
# The release's tree is extracted with `git archive` (nothing is fetched, and no
# worktree is registered) into target/previous-release/src and built there with the
# SAME target folder as the main build, so the third-party crates, whose versions and
# profiles are unchanged, are shared and only fts's own crates are compiled again.
# `--features tokio/test-util` gives tokio the features it has in `cargo test
# --workspace` (fts-net's tests enable it), so that tokio and the crates above it are
# shared too (it changes nothing at run time). That build also writes target/debug/fts: run this BEFORE the main build (which writes it
# back), as .ci/run does, never between a build and its tests.
#
# Bump PREVIOUS_RELEASE at each release, to the commit that shipped.
set -euo pipefail
cd "$(dirname "$0")/.."

PREVIOUS_RELEASE=33086c7

if ! full=$(git rev-parse --verify --quiet "${PREVIOUS_RELEASE}^{commit}"); then
  echo "previous-release.sh: commit $PREVIOUS_RELEASE is not in this clone's history (a shallow clone?): \
fetch the full history (git fetch --unshallow) to build the previous release" >&2
  exit 1
fi
target="${CARGO_TARGET_DIR:-$PWD/target}"
out="$target/previous-release"
src="$out/src"
if [[ "$(cat "$src/.fts-commit" 2>/dev/null)" != "$full" ]]; then
  rm -rf "$src"
  mkdir -p "$src"
  git archive "$full" | tar -x -C "$src"
  # fts's own crates of the old tree get a version of their own: cargo names a path
  # crate's artifacts by its name, version and path inside its workspace, which are the
  # same in both trees, so without this the two builds would take each other's
  # fts-proto, fts-net ... from the shared target folder. Third-party crates keep
  # their versions (and Cargo.lock), and stay shared.
  sed -i 's/^version = "0\.1\.0"$/version = "0.1.0-previous"/; s/\(fts-[a-z]* = { path = "[^"]*", version = \)"0\.1\.0"/\1"0.1.0-previous"/' "$src/Cargo.toml"
  perl -0pi -e 's/(name = "fts(?:-[a-z]+)?"\nversion = )"0\.1\.0"/$1"0.1.0-previous"/g' "$src/Cargo.lock"
  echo "$full" >"$src/.fts-commit"
fi
(cd "$src" && CARGO_TARGET_DIR="$target" cargo build --locked --quiet -p fts --bin fts --features tokio/test-util)
cp "$target/debug/fts" "$out/fts.tmp"
mv "$out/fts.tmp" "$out/fts"
echo "$out/fts"
