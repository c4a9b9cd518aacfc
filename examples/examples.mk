# The example programs (included by the top-level Makefile): one small program per module,
# examples/<name>.c -> build/examples/<name>, each shown whole in README.md's Modules section.
#
#   make examples        build them all
#   make check-examples  build them, compile each once more in the compiler's default dialect,
#                        run each under a 60 s timeout: one line per example, a summary line,
#                        non-zero if any failed
#   make check-readme    every README block marked <!-- example: PATH --> equals PATH byte for
#                        byte, and every example is shown exactly once (tools/check-readme.sh)

EXAMPLES := $(patsubst examples/%.c,%,$(wildcard examples/*.c))
EXAMPLE_BINS := $(addprefix $(B)/examples/,$(EXAMPLES))
# Built as a user would build them: the public headers only (no -Isrc, no internal macros),
# strict C11 with POSIX (the flags the headers ask for), pedantic, warnings as errors, linked
# against the release archive and the libraries it needs.
EXAMPLE_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) -Werror -pedantic $(CFLAGS) \
                 -Iinclude -pthread
# The second way users compile: the compiler's default dialect (GNU C), no feature macro.
EXAMPLE_PLAIN_CFLAGS := -Wall -Wextra -Werror -Iinclude -fsyntax-only
PUBLIC_HDRS := include/strix.h $(wildcard include/strix/*.h)
EXAMPLE_TIMEOUT ?= 60

.PHONY: examples check-examples check-readme

$(B)/examples:
	mkdir -p $@

# Each program depends on its source, every public header (strix.h includes them all) and the
# archive, so a library or header change rebuilds and relinks it.
$(B)/examples/%: examples/%.c $(PUBLIC_HDRS) $(B)/libstrix.a | $(B)/examples
	$(CC) $(EXAMPLE_CFLAGS) $< -o $@ $(B)/libstrix.a $(LIBS)

examples: $(EXAMPLE_BINS)

# Every example returns 0 when everything went as its comments say and 1 on anything else, and
# bounds every wait itself; the timeout is only a backstop (exit 124: it hung). The output of a
# failing example is shown, indented; a passing one prints only its line.
check-examples: examples
	@pass=0; fail=0; \
	for e in $(EXAMPLES); do \
	  if ! out=$$($(CC) $(EXAMPLE_PLAIN_CFLAGS) examples/$$e.c 2>&1); then \
	    why="does not compile with $(CC) $(EXAMPLE_PLAIN_CFLAGS)"; \
	  elif out=$$(timeout $(EXAMPLE_TIMEOUT) $(B)/examples/$$e 2>&1); then \
	    why=; \
	  else \
	    rc=$$?; why="exit $$rc"; [ $$rc -eq 124 ] && why="timed out after $(EXAMPLE_TIMEOUT) s"; \
	  fi; \
	  if [ -z "$$why" ]; then pass=$$((pass + 1)); echo "PASS $$e"; \
	  else fail=$$((fail + 1)); echo "FAIL $$e ($$why)"; \
	    [ -n "$$out" ] && printf '%s\n' "$$out" | sed 's/^/    /'; fi; \
	done; \
	echo "examples: $$pass passed, $$fail failed"; \
	[ $$fail -eq 0 ]

check-readme:
	tools/check-readme.sh

-include examples/proxy/proxy.mk
