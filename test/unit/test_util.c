/* Unit tests for common/util.c: the UTF-8 check that text from the
 * network passes before it is echoed or compared. */
#include "util.h"

#include "check.h"

/* The UTF-8 check on a string literal of n bytes (NULs inside count). */
#define UTF8(lit) util_valid_utf8((lit), sizeof(lit) - 1)

/* Well-formed text of every length of sequence, at the edges of each range. */
static void test_utf8_valid(void)
{
	CHECK(UTF8(""));
	CHECK(UTF8("plain ASCII /mnt/a,b"));
	CHECK(UTF8("\x7f"));
	CHECK(UTF8("\xc2\x80"));         /* U+0080 */
	CHECK(UTF8("caf\xc3\xa9"));      /* U+00E9 */
	CHECK(UTF8("\xdf\xbf"));         /* U+07FF */
	CHECK(UTF8("\xe0\xa0\x80"));     /* U+0800 */
	CHECK(UTF8("\xe2\x82\xac"));     /* U+20AC */
	CHECK(UTF8("\xed\x9f\xbf"));     /* U+D7FF, just below the surrogates */
	CHECK(UTF8("\xee\x80\x80"));     /* U+E000, just above them */
	CHECK(UTF8("\xef\xbf\xbf"));     /* U+FFFF */
	CHECK(UTF8("\xf0\x90\x80\x80")); /* U+10000 */
	CHECK(UTF8("\xf4\x8f\xbf\xbf")); /* U+10FFFF, the last code point */
	CHECK(UTF8("a\0b"));             /* a NUL is the caller's business */
}

/* Stray, overlong, surrogate, too large, and cut short sequences. */
static void test_utf8_invalid(void)
{
	CHECK(!UTF8("\x80"));
	CHECK(!UTF8("a\xbf"));
	CHECK(!UTF8("\xff"));
	CHECK(!UTF8("\xfe"));
	CHECK(!UTF8("\xc0\xaf"));         /* overlong '/' */
	CHECK(!UTF8("\xc1\xbf"));         /* overlong U+007F */
	CHECK(!UTF8("\xe0\x80\xaf"));     /* overlong '/' in three bytes */
	CHECK(!UTF8("\xe0\x9f\xbf"));     /* overlong U+07FF */
	CHECK(!UTF8("\xf0\x8f\xbf\xbf")); /* overlong U+FFFF */
	CHECK(!UTF8("\xed\xa0\x80"));     /* U+D800, a surrogate */
	CHECK(!UTF8("\xed\xbf\xbf"));     /* U+DFFF */
	CHECK(!UTF8("\xf4\x90\x80\x80")); /* U+110000 */
	CHECK(!UTF8("\xf5\x80\x80\x80"));
	CHECK(!UTF8("\xc3")); /* cut short */
	CHECK(!UTF8("\xe2\x82"));
	CHECK(!UTF8("\xf0\x90\x80"));
	CHECK(!UTF8("\xc3(")); /* a continuation byte missing */
	CHECK(!UTF8("\xe2(\xac"));
	CHECK(!UTF8("\xf0\x90(\x80"));
	/* Only len bytes are looked at: a cut sequence is cut however the
	 * buffer goes on. */
	CHECK(!util_valid_utf8("\xc3\xa9", 1));
	CHECK(util_valid_utf8("ok\xff", 2));
}

int main(void)
{
	test_utf8_valid();
	test_utf8_invalid();
	return check_report("util");
}
