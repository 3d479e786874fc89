#!/usr/bin/env bash
# The book: builds it with mdBook (broken internal links to pages, files and heading anchors are
# errors: linkinator checks the built HTML),
# runs the tests that follow its tutorials and check its reference pages against the code, and
# opens it in headless Chromium to check that the quick start renders and search works
# (screenshots in target/book-screenshots/).
set -euo pipefail
cd "$(dirname "$0")/.."

MDBOOK_VERSION=0.5.4
NODE_TOOLS=book/checks         # linkinator and playwright-core, pinned in its package-lock.json

start=$(date +%s)
step() { echo "== book: $* ($(( $(date +%s) - start ))s)"; }

step "tools"
export PATH="$HOME/.cargo/bin:$PATH"
installed() { "$1" --version 2>/dev/null | grep -qF "$2"; }
# Only the search feature: `mdbook serve` and `watch` are for writers, and leaving them out
# builds in about two thirds of the time.
installed mdbook "v$MDBOOK_VERSION" \
    || cargo install mdbook --locked --version "$MDBOOK_VERSION" --no-default-features --features search
# Chromium for the browser check; fetchmail, whose quick-start step is skipped without it.
if { ! command -v chromium || ! command -v fetchmail; } >/dev/null \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core fetchmail >/dev/null
fi
# playwright-core only drives the browser; it downloads none (the machine's network is closed).
(cd "$NODE_TOOLS" && npm ci --no-audit --no-fund --silent)

step "mdbook build"
rm -rf book/book
mdbook build book

step "links to pages, files and heading anchors (linkinator over the built HTML; print.html carries every cross-page link)"
(cd "$NODE_TOOLS" && npx --no-install linkinator ../book --recurse --check-fragments \
    --skip '^(?!http://localhost)' --silent)

# They are part of `cargo test --workspace` too; .ci/run, which has just run that, sets
# POPPET_BOOK_TESTS_RAN=1 so they do not run twice.
if [ "${POPPET_BOOK_TESTS_RAN:-}" != 1 ]; then
    step "tests that follow the book (tutorial steps, config reference, standards table, hello-auth)"
    cargo test --locked -p poppet-tests --test book_steps --test book_reference --test hello_auth
fi

step "headless Chromium: quick start and search"
if command -v chromium >/dev/null; then
    node "$NODE_TOOLS/check.mjs" book/book target/book-screenshots
else
    echo "SKIP: chromium is not installed (needs root and apt-get); the browser check did not run"
    mkdir -p target && echo "book browser check: chromium is not installed" >> target/poppet-test-skips.txt
fi

step "done"
