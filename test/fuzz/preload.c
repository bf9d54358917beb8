/*-------------------------------------------------------------------------
 *
 * preload.c
 *	  A stand-in for swift_demangle, preloaded with the ASan runtime.
 *
 * The postgres binary is not instrumented, so the ASan runtime comes in by
 * LD_PRELOAD and initializes lazily, on the first malloc -- which happens
 * inside libgpg-error's constructor while glibc holds its gettext lock.
 * The runtime then looks up swift_demangle with dlsym; the failed lookup
 * makes dlerror translate its message through gettext, takes the same
 * lock again and corrupts it, and postgres hangs in bindtextdomain() in
 * main().  With this symbol present the lookup succeeds and nothing is
 * translated.  It is never called: asr has no Swift symbols.
 *
 * IDENTIFICATION
 *	  test/fuzz/preload.c
 *
 *-------------------------------------------------------------------------
 */
#include <stddef.h>

char	   *swift_demangle(const char *mangled, size_t len, char *out,
						   size_t *outlen, unsigned flags);

char *
swift_demangle(const char *mangled, size_t len, char *out, size_t *outlen,
			   unsigned flags)
{
	return NULL;
}
