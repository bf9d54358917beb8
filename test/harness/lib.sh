# lib.sh: shared helpers of asr's test harness and demo (sourced, not run).
#
# Everything here works on a fresh Debian 12 machine: as root it installs
# what is missing, as a normal user it stops with the exact command to run.

PG_MAJOR=15
SYS_PYTHON=/usr/bin/python3

# ASR_PG_PREFIX names a private, relocatable copy of Debian's PostgreSQL to
# build against and test with (PostgreSQL finds its lib and share
# directories relative to its binaries).  Engineers working side by side use
# one each so that nobody's "make install" changes another's test run; a
# normal user without write access to the system's PostgreSQL gets one in
# .pg/ automatically.
if [ -z "${ASR_PG_PREFIX+set}" ] && [ "$(id -u)" -ne 0 ] &&
	[ ! -w /usr/lib/postgresql/$PG_MAJOR/lib ]; then
	ASR_PG_PREFIX=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.pg
fi
# children (the suites, the cluster script) inherit the decision, even "none"
export ASR_PG_PREFIX="${ASR_PG_PREFIX:-}"
if [ -n "$ASR_PG_PREFIX" ]; then
	PG_BIN=$ASR_PG_PREFIX/usr/lib/postgresql/$PG_MAJOR/bin
	PGXS_DIR=$ASR_PG_PREFIX/usr/lib/postgresql/$PG_MAJOR/lib/pgxs
else
	PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
	PGXS_DIR=/usr/lib/postgresql/$PG_MAJOR/lib/pgxs
fi

# Debian packages the build, the tests and the demo need.
ASR_PACKAGES="make gcc pkg-config rsync procps openssl ca-certificates \
postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR postgresql-$PG_MAJOR-pgtap \
libtap-parser-sourcehandler-pgtap-perl libipc-run-perl \
libcurl4-openssl-dev libssl-dev python3 python3-azure python3-cryptography python3-matplotlib \
clang-14 libclang-rt-14-dev valgrind"

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Install (root) or name (anyone else) the missing Debian packages.
ensure_packages() {
	local missing=() p
	for p in $ASR_PACKAGES "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
			|| missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -eq 0 ]; then
		say "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null \
			|| die "apt-get install failed"
		# Debian's postgresql package starts a cluster of its own; we never use it.
	else
		printf 'missing Debian packages; run:\n  sudo apt-get install -y %s\n' "${missing[*]}" >&2
		exit 1
	fi
}

# Make the private copy of PostgreSQL named by ASR_PG_PREFIX, once.
ensure_private_pg() {
	[ -n "${ASR_PG_PREFIX:-}" ] || return 0
	[ -x "$PG_BIN/postgres" ] && return 0
	say "making a private copy of PostgreSQL in $ASR_PG_PREFIX"
	mkdir -p "$ASR_PG_PREFIX/usr/lib/postgresql" "$ASR_PG_PREFIX/usr/share/postgresql" \
		"$ASR_PG_PREFIX/usr/include"
	cp -a /usr/lib/postgresql/$PG_MAJOR "$ASR_PG_PREFIX/usr/lib/postgresql/"
	cp -a /usr/share/postgresql/$PG_MAJOR "$ASR_PG_PREFIX/usr/share/postgresql/"
	cp -a /usr/include/postgresql "$ASR_PG_PREFIX/usr/include/"
	chmod -R u+w "$ASR_PG_PREFIX"
}

# Build and install the extension into the server that pg_config names.
build_and_install() {
	local top=$1
	ensure_private_pg
	make -C "$top" -s PG_CONFIG=$PG_BIN/pg_config >/dev/null || die "build failed"
	local pkglibdir
	pkglibdir=$($PG_BIN/pg_config --pkglibdir)
	if [ -w "$pkglibdir" ]; then
		make -C "$top" -s PG_CONFIG=$PG_BIN/pg_config install >/dev/null || die "make install failed"
	elif ! cmp -s "$top/asr.so" "$pkglibdir/asr.so"; then
		printf 'the built asr.so is not installed; run:\n  sudo make -C %s install\n' "$top" >&2
		exit 1
	fi
}

# The OS user that runs clusters: initdb refuses root.
test_user() {
	if [ "$(id -u)" -ne 0 ]; then
		id -un
		return
	fi
	id postgres >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash postgres
	echo postgres
}

# Copy the source tree to a fresh directory the test user owns, so that
# results and clusters never land in (or need write access to) the checkout.
stage_tree() {
	local top=$1 user=$2 dest
	dest=$(mktemp -d /tmp/asr-run.XXXXXX)
	rsync -a --exclude .git --exclude tmp_check --exclude tmp_check_iso \
		--exclude results --exclude output_iso --exclude .test-run --exclude /.pg \
		"$top"/ "$dest"/
	[ "$(id -u)" -eq 0 ] && chown -R "$user" "$dest"
	chmod 755 "$dest"
	echo "$dest"
}

# Run a command as the test user (a no-op wrapper when we are that user).
as_user() {
	local user=$1
	shift
	if [ "$(id -un)" = "$user" ]; then
		"$@"
	else
		runuser -u "$user" -- "$@"
	fi
}

# A free TCP port on 127.0.0.1.
free_port() {
	$SYS_PYTHON -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
