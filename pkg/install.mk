# Installing strix (included by the top-level Makefile).
#
#   make install      [PREFIX=/usr/local] [DESTDIR=] [LIBDIR= INCLUDEDIR= MANDIR= PKGCONFIGDIR= CMAKEDIR=]
#   make uninstall    the same variables: removes what install put there
#   make check-install  install into temporary prefixes, build consumers with pkg-config and CMake,
#                     run them, uninstall (tests/install/run.sh)
#
# Installed, under $(DESTDIR):
#   $(LIBDIR)        libstrix.a, libstrix.so.$(VERSION), libstrix.so.0 -> it, libstrix.so -> .so.0
#   $(INCLUDEDIR)    strix.h, strix/*.h
#   $(PKGCONFIGDIR)  strix.pc                           (from pkg/strix.pc.in)
#   $(CMAKEDIR)      strix-config.cmake, strix-config-version.cmake  (from pkg/*.cmake.in)
#   $(MANDIR)/man3   every file of build/docs/man/man3/ (the `man` target of docs/docs.mk)
#
# install depends on `lib` only (not `all`: no package installs, no tests or bench built as root);
# after a plain `make`, it builds nothing. The generated files are written to build/pkg/ on every
# install, since they depend on the directories given on that command line.
# Nothing is recorded outside the prefix: uninstall recomputes the list from this tree (headers,
# VERSION, the man pages in build/docs/man/man3/), so run it from the tree that installed.
# No ldconfig is run: after a non-DESTDIR install to a system prefix, run it yourself.

PREFIX       ?= /usr/local
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
MANDIR       ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CMAKEDIR     ?= $(LIBDIR)/cmake/strix
DESTDIR      ?=
INSTALL      ?= install

VERSION_MAJOR := $(word 1,$(subst ., ,$(VERSION)))
VERSION_MINOR := $(word 2,$(subst ., ,$(VERSION)))

INSTALL_HEADERS := $(wildcard include/strix/*.h)
MAN_BUILD_DIR   := $(B)/docs/man/man3

# The .pc and CMake files name directories relative to the prefix where they lie under it, so
# pkg-config --define-prefix and a moved CMake package keep working; any given elsewhere stays
# absolute. CMAKEDIR_UP is the way from CMAKEDIR back to PREFIX (lib/cmake/strix -> ../../..).
install_rel = $(patsubst $(PREFIX)/%,%,$(1))
install_pcdir = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))
install_empty :=
install_space := $(install_empty) $(install_empty)
CMAKEDIR_REL = $(call install_rel,$(CMAKEDIR))
CMAKEDIR_UP = $(if $(filter /%,$(CMAKEDIR_REL)),$(PREFIX),$(subst $(install_space),/,$(patsubst %,..,$(subst /, ,$(CMAKEDIR_REL)))))
# The word size of the installed libraries, for the CMake version file's architecture check.
SIZEOF_VOID_P = $(shell $(CC) -dM -E -x c /dev/null | sed -n 's/^\#define __SIZEOF_POINTER__ //p')
SIZEOF_VOID_P_BITS = $(shell expr 8 \* $(SIZEOF_VOID_P))

INSTALL_SED = sed -e 's|@PREFIX@|$(PREFIX)|g' \
  -e 's|@LIBDIR@|$(call install_pcdir,$(LIBDIR))|g' \
  -e 's|@INCLUDEDIR@|$(call install_pcdir,$(INCLUDEDIR))|g' \
  -e 's|@LIBDIR_REL@|$(call install_rel,$(LIBDIR))|g' \
  -e 's|@INCLUDEDIR_REL@|$(call install_rel,$(INCLUDEDIR))|g' \
  -e 's|@CMAKEDIR_REL@|$(CMAKEDIR_REL)|g' \
  -e 's|@PREFIX_FROM_CMAKEDIR@|$(CMAKEDIR_UP)|g' \
  -e 's|@VERSION@|$(VERSION)|g' -e 's|@VERSION_MAJOR@|$(VERSION_MAJOR)|g' \
  -e 's|@VERSION_MINOR@|$(VERSION_MINOR)|g' -e 's|@SOVERSION@|$(SOVERSION)|g' \
  -e 's|@SIZEOF_VOID_P@|$(SIZEOF_VOID_P)|g' -e 's|@SIZEOF_VOID_P_BITS@|$(SIZEOF_VOID_P_BITS)|g'

# Directories shared with other packages (lib, include, ...) are created when missing and never
# re-moded: `install -d` resets an existing directory's mode (a 2775 root:staff /usr/local/lib
# would lose its group bits). Only strix's own directories are removed again by uninstall.
install_mkdir = for d in $(1); do test -d "$$d" || $(INSTALL) -d -m 755 "$$d" || exit 1; done

# Progress words, silent under make -s (as the commands are).
install_say = $(if $(findstring s,$(firstword -$(MAKEFLAGS))),:,echo)

# Refuse what would install somewhere surprising: an empty or relative PREFIX, an unknown VERSION.
install_check = \
  case "$(PREFIX)" in /*) ;; *) echo "strix: PREFIX must be an absolute path (got '$(PREFIX)')" >&2; exit 1;; esac; \
  test -n "$(VERSION_MINOR)" || { echo "strix: no VERSION from include/strix/version.h" >&2; exit 1; }

.PHONY: install uninstall check-install

install: lib man
	@$(install_check)
	@mkdir -p $(B)/pkg
	@$(install_say) "sed pkg/strix.pc.in > $(B)/pkg/strix.pc"; $(INSTALL_SED) pkg/strix.pc.in > $(B)/pkg/strix.pc
	@$(install_say) "sed pkg/strix-config.cmake.in > $(B)/pkg/strix-config.cmake"; $(INSTALL_SED) pkg/strix-config.cmake.in > $(B)/pkg/strix-config.cmake
	@$(install_say) "sed pkg/strix-config-version.cmake.in > $(B)/pkg/strix-config-version.cmake"; $(INSTALL_SED) pkg/strix-config-version.cmake.in > $(B)/pkg/strix-config-version.cmake
	@$(call install_mkdir,"$(DESTDIR)$(LIBDIR)" "$(DESTDIR)$(INCLUDEDIR)/strix" \
	  "$(DESTDIR)$(PKGCONFIGDIR)" "$(DESTDIR)$(CMAKEDIR)")
	$(INSTALL) -m 644 $(B)/libstrix.a "$(DESTDIR)$(LIBDIR)/libstrix.a"
# The shared library goes in under a temporary name, then is renamed over the old one: install
# rewrites an existing file in place, which would crash programs that have it mapped.
	$(INSTALL) -m 755 $(B)/libstrix.so.$(VERSION) "$(DESTDIR)$(LIBDIR)/libstrix.so.$(VERSION).new"
	mv -f "$(DESTDIR)$(LIBDIR)/libstrix.so.$(VERSION).new" "$(DESTDIR)$(LIBDIR)/libstrix.so.$(VERSION)"
	ln -sfn libstrix.so.$(VERSION) "$(DESTDIR)$(LIBDIR)/libstrix.so.$(SOVERSION)"
	ln -sfn libstrix.so.$(SOVERSION) "$(DESTDIR)$(LIBDIR)/libstrix.so"
	$(INSTALL) -m 644 include/strix.h "$(DESTDIR)$(INCLUDEDIR)/strix.h"
	$(INSTALL) -m 644 $(INSTALL_HEADERS) "$(DESTDIR)$(INCLUDEDIR)/strix/"
	$(INSTALL) -m 644 $(B)/pkg/strix.pc "$(DESTDIR)$(PKGCONFIGDIR)/strix.pc"
	$(INSTALL) -m 644 $(B)/pkg/strix-config.cmake $(B)/pkg/strix-config-version.cmake \
	  "$(DESTDIR)$(CMAKEDIR)/"
# Man pages: the list is read when this runs (after `man`); links among them stay links.
	@set -e; n=0; \
	for f in $(MAN_BUILD_DIR)/*; do \
	  test -f "$$f" || test -L "$$f" || continue; \
	  if [ $$n = 0 ]; then $(call install_mkdir,"$(DESTDIR)$(MANDIR)/man3"); fi; \
	  if [ -L "$$f" ]; then ln -sfn "$$(readlink "$$f")" "$(DESTDIR)$(MANDIR)/man3/$${f##*/}"; \
	  else $(INSTALL) -m 644 "$$f" "$(DESTDIR)$(MANDIR)/man3/$${f##*/}"; fi; \
	  n=$$((n + 1)); \
	done; \
	if [ $$n = 0 ]; then echo "strix: $(MAN_BUILD_DIR)/ is empty: no man pages installed" >&2; exit 1; fi; \
	$(install_say) "strix: $$n man pages installed in $(DESTDIR)$(MANDIR)/man3"

# Removes each file install writes, by name. The symlinks go only while they still point at this
# version (a newer install may own them now). strix's own directories go once empty; a non-empty
# one is left, with a word (files this tree does not know of, such as headers of another version).
uninstall:
	@$(install_check)
	rm -f "$(DESTDIR)$(LIBDIR)/libstrix.a" "$(DESTDIR)$(LIBDIR)/libstrix.so.$(VERSION)" \
	  "$(DESTDIR)$(LIBDIR)/libstrix.so.$(VERSION).new"
	@l="$(DESTDIR)$(LIBDIR)/libstrix.so.$(SOVERSION)"; \
	if [ -L "$$l" ] && [ "$$(readlink "$$l")" = libstrix.so.$(VERSION) ]; then $(install_say) "rm -f $$l"; rm -f "$$l"; fi; \
	l="$(DESTDIR)$(LIBDIR)/libstrix.so"; \
	if [ -L "$$l" ] && [ "$$(readlink "$$l")" = libstrix.so.$(SOVERSION) ] && \
	   ! [ -e "$(DESTDIR)$(LIBDIR)/libstrix.so.$(SOVERSION)" ]; then $(install_say) "rm -f $$l"; rm -f "$$l"; fi
	rm -f "$(DESTDIR)$(INCLUDEDIR)/strix.h" \
	  $(patsubst include/%,"$(DESTDIR)$(INCLUDEDIR)/%",$(INSTALL_HEADERS))
	rm -f "$(DESTDIR)$(PKGCONFIGDIR)/strix.pc"
	rm -f "$(DESTDIR)$(CMAKEDIR)/strix-config.cmake" "$(DESTDIR)$(CMAKEDIR)/strix-config-version.cmake"
	@n=0; for f in $(MAN_BUILD_DIR)/*; do \
	  test -f "$$f" || test -L "$$f" || continue; \
	  rm -f "$(DESTDIR)$(MANDIR)/man3/$${f##*/}"; n=$$((n + 1)); \
	done; \
	if [ $$n = 0 ]; then \
	  echo "strix: $(MAN_BUILD_DIR)/ is empty: run make man first to remove the man pages" >&2; \
	elif [ $$n != 0 ]; then $(install_say) "strix: $$n man pages removed from $(DESTDIR)$(MANDIR)/man3"; fi
	@for d in "$(DESTDIR)$(INCLUDEDIR)/strix" "$(DESTDIR)$(CMAKEDIR)"; do \
	  [ -d "$$d" ] || continue; \
	  rmdir "$$d" 2>/dev/null || echo "strix: $$d is not empty, left in place" >&2; \
	done

# Installs into temporary prefixes (never the real PREFIX), builds tests/install/consumer.c and
# the example (EXAMPLE, default examples/pool.c when it exists) with pkg-config and CMake, runs
# them, checks the man pages and that uninstall leaves nothing (tests/install/run.sh).
check-install: lib
	MAKE="$(MAKE)" CC="$(CC)" tests/install/run.sh $(EXAMPLE)
