#!/usr/bin/env bash
# Puts CIFAR-10 (binary version) at data/cifar-10-batches-bin.
#
# Links an existing local copy when there is one ($GRADLAB_DATA, or
# ../shared/data/cifar-10-batches-bin next to the repository); otherwise
# downloads the official archive, checks its md5 and unpacks it here.
# Runs from the repository root or from data/.
set -euo pipefail

URL="${GRADLAB_CIFAR10_URL:-https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz}"
MD5="c32a1d4ab5d03f1284b67883e8d87530"
ARCHIVE="cifar-10-binary.tar.gz"
TARGET="cifar-10-batches-bin"

data_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$data_dir"

die() {
    echo "get-cifar10: $*" >&2
    exit 1
}

# True when $1 is a directory holding the CIFAR-10 batch files.
is_cifar10_dir() {
    [ -f "$1/data_batch_1.bin" ] && [ -f "$1/test_batch.bin" ]
}

if is_cifar10_dir "$TARGET"; then
    echo "CIFAR-10 already at $data_dir/$TARGET"
    exit 0
fi
if [ -e "$TARGET" ] || [ -L "$TARGET" ]; then
    die "$data_dir/$TARGET exists but lacks data_batch_1.bin or test_batch.bin; remove it and rerun"
fi

# A local copy: $GRADLAB_DATA (the batches directory or its parent), then the shared one.
candidates=()
if [ -n "${GRADLAB_DATA:-}" ]; then
    candidates+=("$GRADLAB_DATA" "$GRADLAB_DATA/$TARGET")
fi
candidates+=("$data_dir/../../shared/data/$TARGET")
for candidate in "${candidates[@]}"; do
    if is_cifar10_dir "$candidate"; then
        source_dir="$(cd "$candidate" && pwd)"
        ln -s "$source_dir" "$TARGET"
        echo "linked $data_dir/$TARGET -> $source_dir"
        exit 0
    fi
done
if [ -n "${GRADLAB_DATA:-}" ]; then
    echo "GRADLAB_DATA=$GRADLAB_DATA holds no CIFAR-10 batch files; downloading instead" >&2
fi

md5_of() {
    if command -v md5sum >/dev/null; then
        md5sum "$1" | cut -d' ' -f1
    elif command -v md5 >/dev/null; then
        md5 -q "$1"
    else
        die "neither md5sum nor md5 is installed; cannot verify $1"
    fi
}

if [ ! -f "$ARCHIVE" ]; then
    echo "downloading $URL"
    partial="$ARCHIVE.part"
    if command -v curl >/dev/null; then
        curl --fail --location --output "$partial" "$URL" || { rm -f "$partial"; die "download of $URL failed"; }
    elif command -v wget >/dev/null; then
        wget --output-document "$partial" "$URL" || { rm -f "$partial"; die "download of $URL failed"; }
    else
        die "neither curl nor wget is installed"
    fi
    mv "$partial" "$ARCHIVE"
fi

actual="$(md5_of "$ARCHIVE")"
if [ "$actual" != "$MD5" ]; then
    rm -f "$ARCHIVE"
    die "md5 of $ARCHIVE is $actual, expected $MD5; the file was removed, rerun to download again"
fi

tar -xzf "$ARCHIVE"
is_cifar10_dir "$TARGET" || die "$ARCHIVE did not unpack to $data_dir/$TARGET"
echo "CIFAR-10 unpacked to $data_dir/$TARGET"
