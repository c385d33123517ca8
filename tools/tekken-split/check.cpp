// Differential check: llama.cpp's std::regex path vs the custom tekken splitter added by
// vendor/patches/llama-cpp-sys-2/0003-tekken-split-without-regex.patch, on random strings drawn
// from characters that exercise every branch (ASCII letters of both cases, digits, each kind of
// whitespace, '/', punctuation, non-ASCII letters, digits, marks, spaces, symbols, unassigned).
// Built and run by tools/check-tekken-split.sh.
#include "unicode.h"

#include <cstdio>
#include <random>
#include <string>
#include <vector>

static const char * TEKKEN =
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

int main(int argc, char ** argv) {
    const long n_cases = argc > 1 ? atol(argv[1]) : 200000;
    const std::vector<std::string> pool = {
        "a", "b", "z", "A", "B", "Z", "0", "7", " ", " ", "\t", "\n", "\r", "\v", "\f", "/", "!", "'", ".",
        "-", "_", "$", "\x01", "\x1f", "\x7f", "\xc3\xa9" /* é */, "\xc3\x89" /* É */, "\xce\xa9" /* Ω */,
        "\xcf\x89" /* ω */, "\xe6\x9d\xb1" /* 東 */, "\xd9\xa3" /* ٣ */, "\xcc\x81" /* U+0301 mark */,
        "\xc2\xa0" /* NBSP */, "\xe3\x80\x80" /* ideographic space */, "\xf0\x9f\xa6\x8a" /* 🦊 */,
        "\xe2\x80\xa8" /* line separator */, "\xc2\x85" /* NEL */, "\xcd\xb8" /* U+0378 unassigned */,
        "\xc7\x85" /* ǅ titlecase */, "\xca\xb0" /* ʰ modifier */, "\xe2\x85\xa0" /* Ⅰ letter number */,
    };
    std::mt19937_64 rng(12345);
    long mismatches = 0;
    for (long k = 0; k < n_cases; ++k) {
        std::string text;
        const size_t len = rng() % 24;
        for (size_t i = 0; i < len; ++i) {
            text += pool[rng() % pool.size()];
        }
        const auto custom = unicode_regex_split(text, {TEKKEN});
        const auto stl = unicode_regex_split(text, {std::string("(?:") + TEKKEN + ")"});
        if (custom != stl) {
            if (++mismatches <= 10) {
                fprintf(stderr, "mismatch on %zu bytes:", text.size());
                for (unsigned char ch : text) fprintf(stderr, " %02x", ch);
                fprintf(stderr, "\n  custom:");
                for (auto & w : custom) fprintf(stderr, " [%s]", w.c_str());
                fprintf(stderr, "\n  stl:   ");
                for (auto & w : stl) fprintf(stderr, " [%s]", w.c_str());
                fprintf(stderr, "\n");
            }
        }
    }
    // The case that overflowed the stack: 1 MB of one character, each kind.
    for (const char * ch : {"a", "A", " ", "=", "\n", "7", "\xc3\xa9"}) {
        std::string big;
        while (big.size() < (1u << 20)) big += ch;
        const auto words = unicode_regex_split(big, {TEKKEN});
        size_t total = 0;
        for (auto & w : words) total += w.size();
        fprintf(stderr, "1 MiB of %-4s -> %zu pieces\n", ch[0] == '\n' ? "\\n" : ch, words.size());
        if (total == 0) return 2;
    }
    printf("%ld random strings: %ld mismatches\n", n_cases, mismatches);
    return mismatches == 0 ? 0 : 1;
}
