# lib.sh: shared helpers of asr's test harness and demo (sourced, not run).
#
# Everything here works on a fresh Debian 12 machine: as root it installs
# what is missing, as a normal user it stops with the exact command to run.

PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
PGXS_DIR=/usr/lib/postgresql/$PG_MAJOR/lib/pgxs
SYS_PYTHON=/usr/bin/python3

# Debian packages the build, the tests and the demo need.
ASR_PACKAGES="make gcc pkg-config rsync procps openssl ca-certificates \
postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR postgresql-$PG_MAJOR-pgtap \
libtap-parser-sourcehandler-pgtap-perl libipc-run-perl \
libcurl4-openssl-dev libssl-dev python3 python3-azure python3-cryptography"

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

# Build and install the extension into the server that pg_config names.
build_and_install() {
	local top=$1
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
		--exclude results --exclude output_iso --exclude .test-run "$top"/ "$dest"/
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
