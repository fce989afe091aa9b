# swarmhub - one non-recursive Makefile. See README.md.
PKGS      = libmicrohttpd libcurl jansson libpq ldap libnfs libcrypto libcrypt
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN      = -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wcast-qual
CPPFLAGS += -D_GNU_SOURCE -MMD -MP $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -llber -pthread
ifdef SANITIZE
CFLAGS   += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=$(SANITIZE)
endif
B        ?= build
BIN      ?= bin

COMMON_SRC  = $(wildcard common/*.c)
HUB_SRC     = $(filter-out hub/main.c,$(wildcard hub/*.c))
SPAWNER_SRC = $(wildcard spawner/*.c)
CULLER_SRC  = $(wildcard culler/*.c)
EDGE_SRC    = $(wildcard edge/*.c)
LIB_SRC     = $(COMMON_SRC) $(HUB_SRC) $(SPAWNER_SRC) $(CULLER_SRC) $(EDGE_SRC)
LIB_OBJ     = $(LIB_SRC:%.c=$(B)/%.o)
CTL_SRC     = $(wildcard hub/ctl/*.c)
UNIT_SRC    = $(wildcard tests/unit/test_*.c)
INTEG_SRC   = $(wildcard tests/integration/test_*.c)
UNIT_BIN    = $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
INTEG_BIN   = $(INTEG_SRC:tests/integration/%.c=$(B)/tests/%)

.PHONY: up down all tests-bin deps test test-unit test-integration asan valgrind bench run run-clean \
        check-deps fuzz clean soak
all: $(BIN)/swarmhub $(BIN)/swarmhubctl

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(B)/libswarmhub.a: $(LIB_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(BIN)/swarmhub: $(B)/hub/main.o $(B)/libswarmhub.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/swarmhubctl: $(CTL_SRC:%.c=$(B)/%.o) $(B)/libswarmhub.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/%: $(B)/tests/unit/%.o $(B)/libswarmhub.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(B)/tests/%: $(B)/tests/integration/%.o $(B)/libswarmhub.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

tests-bin: $(UNIT_BIN) $(INTEG_BIN)

# Installs missing Debian packages (as root) or prints the apt-get line.
deps:
	@scripts/deps.sh

test: deps
	@$(MAKE) --no-print-directory all tests-bin check-deps check-settings
	@echo "fuzzing request and HTTP/1.1 parsing, $${FUZZ_SECONDS:-15} s each..."
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-15} $(MAKE) --no-print-directory fuzz \
	    >build-fuzz.log 2>&1 || { tail -n 40 build-fuzz.log; exit 1; }
	@echo "fuzz: no crash"
	@tests/run.sh all

test-unit:
	@$(MAKE) --no-print-directory all tests-bin
	@tests/run.sh unit

test-integration: deps
	@$(MAKE) --no-print-directory all tests-bin
	@tests/run.sh integration

asan: deps
	@$(MAKE) --no-print-directory B=build-asan BIN=build-asan/bin \
	    SANITIZE=address,undefined all tests-bin
	@SWARMHUB_BUILD=build-asan SWARMHUB_BIN_DIR=$(CURDIR)/build-asan/bin \
	    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1 tests/run.sh all

valgrind: deps
	@$(MAKE) --no-print-directory all tests-bin
	@SWARMHUB_VALGRIND=1 tests/run.sh unit integration

bench: deps
	@$(MAKE) --no-print-directory all
	@tests/bench/run.sh

# The soak test (tests/soak/): not part of make test; SOAK_MINUTES,
# SOAK_USERS, SOAK_RESTART_DOCKERD=0 (see tests/soak/run.sh).
soak: deps
	@$(MAKE) --no-print-directory all
	@SOAK_HUB_BIN=$(abspath $(BIN))/swarmhub tests/soak/run.sh

# Deploy the stack on this swarm (compose/docker-compose.yml) / remove it.
up:
	@scripts/up.sh

down:
	@scripts/down.sh

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/run-dev.sh

# Undo make run: the hub, PostgreSQL, what it set up in Docker, its directory.
run-clean:
	@scripts/run-dev.sh --clean

# libFuzzer targets (tests/fuzz/fuzz_*.c), each run FUZZ_SECONDS (30) on a
# copy of its seed corpus (tests/fuzz/corpus_<name> or tests/fuzz/corpus).
FUZZ_TARGETS = request http1
fuzz:
	@$(MAKE) --no-print-directory B=build-fuzz CC=clang \
	    CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined" \
	    build-fuzz/libswarmhub.a
	@for t in $(FUZZ_TARGETS); do \
	    clang $(WARN) $(CPPFLAGS) -O1 -g -fsanitize=fuzzer,address,undefined \
	        -o build-fuzz/fuzz_$$t tests/fuzz/fuzz_$$t.c \
	        build-fuzz/libswarmhub.a $(LDLIBS) || exit 1; \
	    seeds=tests/fuzz/corpus_$$t; [ -d $$seeds ] || seeds=tests/fuzz/corpus; \
	    rm -rf build-fuzz/corpus_$$t && cp -r $$seeds build-fuzz/corpus_$$t; \
	    echo "fuzz_$$t: $${FUZZ_SECONDS:-30} s"; \
	    build-fuzz/fuzz_$$t -max_total_time=$${FUZZ_SECONDS:-30} \
	        -print_final_stats=1 build-fuzz/corpus_$$t || exit 1; \
	done

# The dependency rules (scripts/check-deps.py): edge/, spawner/, culler/
# on common/ only; hub's core never includes web.h or <microhttpd.h> nor
# calls a web file; no circle among hub files.
check-deps:
	@python3 scripts/check-deps.py

# Every SWARMHUB_* setting the C sources read is in docs/settings.md.
.PHONY: check-settings
check-settings:
	@scripts/check-settings.sh

clean:
	rm -rf build build-asan build-fuzz bin

-include $(shell find $(B) -name '*.d' 2>/dev/null)
