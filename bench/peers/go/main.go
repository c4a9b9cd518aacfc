// Command go-bench is the Go peer of the strix benchmark suite (bench/README.md): the suite's
// workloads written the way Go's own documentation shows (goroutines, channels, sync.WaitGroup,
// golang.org/x/sync/errgroup, golang.org/x/time/rate), each checking its own result.
//
//	go-bench [--smoke] [--workers=N] [--out=FILE]
//
// The program contract is bench/peers/README.md's: --workers sets GOMAXPROCS (default: the CPUs
// this process may use), --smoke runs every workload once at tiny sizes, the JSON goes to FILE
// (standard output without --out), one progress line per finished workload goes to standard
// error, and the exit status is 1 when any workload failed its check.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
)

// fig is one named figure of an entry, in the unit its name says.
type fig struct {
	name string
	v    float64
}

// A workload runs all its repetitions and returns the entry's figures (medians over the
// repetitions, or percentiles over every sample). On a failed check it returns an error, and
// may return the figures of the failing run with it.
type workload struct {
	name    string // run_name
	reps    int
	workers int // the GOMAXPROCS the timed runs used, when it is not the --workers value
	run     func(reps int) ([]fig, error)
}

var (
	smoke   bool
	workers int
)

// size picks the full or the smoke size of a workload.
func size(full, small int64) int64 {
	if smoke {
		return small
	}
	return full
}

// reps is the number of repetitions of a workload: the table's count, or 1 in a smoke run.
func reps(full int) int {
	if smoke {
		return 1
	}
	return full
}

// medianOf runs one repetition `reps` times and reports the median of each figure. The first
// failing repetition ends the workload, with that repetition's figures.
func medianOf(reps int, one func() ([]fig, error)) ([]fig, error) {
	var runs [][]fig
	for r := 0; r < reps; r++ {
		runtime.GC() // the previous run's garbage is not this run's cost
		f, err := one()
		if err != nil {
			return f, err
		}
		runs = append(runs, f)
	}
	out := make([]fig, len(runs[0]))
	for i := range out {
		vals := make([]float64, len(runs))
		for r := range runs {
			vals[r] = runs[r][i].v
		}
		out[i] = fig{runs[0][i].name, median(vals)}
	}
	return out, nil
}

func median(v []float64) float64 {
	sort.Float64s(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// latencyFigs: p50, p99, p99.9 and the maximum of every sample (ns), the rank of quantile q being
// floor(q * count), as the C histogram does.
func latencyFigs(samples []int64, withMax bool) []fig {
	if len(samples) == 0 {
		return nil
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	q := func(p float64) float64 {
		r := int(p * float64(len(samples)))
		if r >= len(samples) {
			r = len(samples) - 1
		}
		return float64(samples[r])
	}
	f := []fig{{"p50_ns", q(0.50)}, {"p99_ns", q(0.99)}, {"p999_ns", q(0.999)}}
	if withMax {
		f = append(f, fig{"max_ns", float64(samples[len(samples)-1])})
	}
	return f
}

// nsPer is a duration divided by a count, in nanoseconds.
func nsPer(d time.Duration, n int64) float64 {
	return float64(d.Nanoseconds()) / float64(n)
}

// ---- the JSON document ------------------------------------------------------------------------

// object is a JSON object that keeps its keys in the order they were added.
type object []member

type member struct {
	key   string
	value interface{}
}

func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.key)
		v, err := json.Marshal(m.value)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", m.key, err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// report collects the entries; the watchdog may write it from another goroutine.
type report struct {
	mu      sync.Mutex
	entries []object
	notes   object
	failed  bool
}

func (r *report) add(e object, failed bool) {
	r.mu.Lock()
	r.entries = append(r.entries, e)
	r.failed = r.failed || failed
	r.mu.Unlock()
}

func (r *report) write(path string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	doc := object{
		{"context", object{
			{"impl", []string{"go"}},
			{"version", runtime.Version()},
			{"workers", workers},
			{"smoke", map[bool]string{true: "yes", false: "no"}[smoke]},
		}},
		{"benchmarks", r.entries},
		{"notes", r.notes},
	}
	if r.entries == nil {
		doc[1].value = []object{}
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	out = append(out, '\n')
	if path == "" {
		_, err = os.Stdout.Write(out)
		return err
	}
	return os.WriteFile(path, out, 0o644)
}

func entry(w *workload, figs []fig, err error, used int) object {
	e := object{{"name", w.name}, {"run_name", w.name}}
	if err != nil {
		e = append(e, member{"error_occurred", true}, member{"error_message", err.Error()})
	} else if w.reps > 1 {
		e = append(e, member{"run_type", "aggregate"}, member{"aggregate_name", "median"},
			member{"repetitions", w.reps})
	} else {
		e = append(e, member{"run_type", "iteration"}, member{"repetitions", 1})
	}
	for _, f := range figs {
		e = append(e, member{f.name, f.v})
	}
	return append(e, member{"workers", used})
}

// ---- the run ----------------------------------------------------------------------------------

// hangLimit bounds one workload's wall time; past it the workload is reported as failed and
// the program ends (a lost task would otherwise leave the run waiting forever).
const hangLimit = 5 * time.Minute

func main() {
	var out, filter string
	flag.BoolVar(&smoke, "smoke", false, "every workload once at tiny sizes")
	flag.IntVar(&workers, "workers", runtime.NumCPU(), "GOMAXPROCS for the runs")
	flag.StringVar(&out, "out", "", "write the JSON here (default: standard output)")
	flag.StringVar(&filter, "filter", "", "run only the workloads whose run_name contains this")
	flag.Parse()
	if flag.NArg() != 0 || workers < 1 {
		fmt.Fprintln(os.Stderr, "usage: go-bench [--smoke] [--workers=N] [--out=FILE]")
		os.Exit(2)
	}
	runtime.GOMAXPROCS(workers)

	rep := &report{notes: notes()}
	begin := time.Now()
	list := workloads()
	for i := range list {
		w := list[i]
		if filter != "" && !strings.Contains(w.name, filter) {
			continue
		}
		used := workers
		if w.workers != 0 {
			used = w.workers
		}
		watchdog := time.AfterFunc(hangLimit, func() {
			rep.add(entry(&w, nil, fmt.Errorf("%s: no result after %v", w.name, hangLimit),
				used), true)
			fmt.Fprintf(os.Stderr, "go-bench: %s: no result after %v, giving up\n", w.name,
				hangLimit)
			if err := rep.write(out); err != nil {
				fmt.Fprintln(os.Stderr, "go-bench:", err)
			}
			os.Exit(1)
		})
		t0 := time.Now()
		figs, err := w.run(w.reps)
		watchdog.Stop()
		for _, f := range figs {
			if err == nil && (math.IsNaN(f.v) || math.IsInf(f.v, 0)) {
				err = fmt.Errorf("%s: figure %s is %v", w.name, f.name, f.v)
			}
		}
		if err != nil {
			figs = finite(figs)
		}
		rep.add(entry(&w, figs, err, used), err != nil)
		line := fmt.Sprintf("go-bench: %-32s", w.name)
		for _, f := range figs {
			line += fmt.Sprintf(" %s=%.4g", f.name, f.v)
		}
		if err != nil {
			line += " FAILED: " + err.Error()
		}
		fmt.Fprintf(os.Stderr, "%s (%.1f s)\n", line, time.Since(t0).Seconds())
	}
	if err := rep.write(out); err != nil {
		fmt.Fprintln(os.Stderr, "go-bench:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "go-bench: done in %.1f s, workers %d\n", time.Since(begin).Seconds(),
		workers)
	if rep.failed {
		os.Exit(1)
	}
}

// finite drops the figures JSON cannot carry.
func finite(figs []fig) []fig {
	var keep []fig
	for _, f := range figs {
		if !math.IsNaN(f.v) && !math.IsInf(f.v, 0) {
			keep = append(keep, f)
		}
	}
	return keep
}

func notes() object {
	return object{
		{"spawn_remote/go", "Go has no thread outside its runtime: the submitter is the main " +
			"goroutine locked to its OS thread (runtime.LockOSThread); it still holds one of the " +
			"GOMAXPROCS Ps, so its go statements fill that P's own run queue rather than a " +
			"shared injection queue"},
		{"wake/go", "the outside thread is the main goroutine locked to its OS thread " +
			"(runtime.LockOSThread), sleeping in nanosleep(2) like the C harness (Go 1.19's " +
			"time.Sleep rounds an idle process's sub-millisecond sleeps up to 1 ms); each task " +
			"is a new goroutine"},
		{"circuit/go", "go-resiliency's breaker algorithm re-written for this suite (Debian " +
			"ships no Go circuit breaker)"},
	}
}

// workloads lists the runs in order: latency first, while no earlier run has left goroutines
// or garbage behind; skynet last, since the million goroutines it creates stay in the runtime's
// list of all goroutines, which every later garbage collection walks.
func workloads() []workload {
	pp := workers
	if pp < 2 {
		pp = 2 // the new task has to start on another worker
	}
	fib25, fib30 := 25, 30
	if smoke {
		fib25, fib30 = 15, 20
	}
	return []workload{
		{"wake/go", 1, 0, func(int) ([]fig, error) {
			return wake(size(20000, 100), 200*time.Microsecond,
				time.Duration(size(2000, 200))*time.Millisecond)
		}},
		{"ping_pong/go", reps(3), pp, func(r int) ([]fig, error) {
			return pingPong(r, size(100000, 300), pp)
		}},
		{"strand_pingpong/go", reps(3), 0, func(r int) ([]fig, error) {
			return strandPingPong(r, size(100000, 300))
		}},
		{"spawn_many/go", reps(5), 0, func(r int) ([]fig, error) {
			return medianOf(r, func() ([]fig, error) { return spawnMany(size(1000000, 2000)) })
		}},
		{"spawn_remote/go", reps(5), 0, func(r int) ([]fig, error) {
			return medianOf(r, func() ([]fig, error) { return spawnRemote(size(1000000, 2000)) })
		}},
		{"chain/go", reps(5), 0, func(r int) ([]fig, error) {
			return medianOf(r, func() ([]fig, error) { return chain(size(1000000, 2000)) })
		}},
		{"yield/go", reps(5), 0, func(r int) ([]fig, error) {
			return medianOf(r, func() ([]fig, error) { return yieldMany(size(200000, 2000)) })
		}},
		{"circuit/go/1", reps(5), 0, func(r int) ([]fig, error) {
			return medianOf(r, func() ([]fig, error) { return circuit(1, size(10000000, 5000)) })
		}},
		{"circuit/go/2", reps(5), 0, func(r int) ([]fig, error) {
			return medianOf(r, func() ([]fig, error) { return circuit(2, size(10000000, 5000)) })
		}},
		{"ratelimit/go/1", reps(5), 0, func(r int) ([]fig, error) {
			return medianOf(r, func() ([]fig, error) { return ratelimit(1, size(10000000, 5000)) })
		}},
		{"ratelimit/go/2", reps(5), 0, func(r int) ([]fig, error) {
			return medianOf(r, func() ([]fig, error) { return ratelimit(2, size(10000000, 5000)) })
		}},
		{"fib/go/25", reps(3), 0, func(r int) ([]fig, error) {
			return medianOf(r, func() ([]fig, error) { return fibSpeedup(fib25) })
		}},
		{"fib/go/30", reps(3), 0, func(r int) ([]fig, error) {
			return medianOf(r, func() ([]fig, error) { return fibSpeedup(fib30) })
		}},
		{"fanout_limit/go/empty/1e5", reps(3), 0, func(r int) ([]fig, error) {
			return medianOf(r, func() ([]fig, error) { return fanout(size(100000, 1000), 0) })
		}},
		{"fanout_limit/go/empty/1e7", 1, 0, func(r int) ([]fig, error) {
			return medianOf(r, func() ([]fig, error) { return fanout(size(10000000, 2000), 0) })
		}},
		{"fanout_limit/go/work10us/1e5", reps(3), 0, func(r int) ([]fig, error) {
			return medianOf(r, func() ([]fig, error) {
				return fanout(size(100000, 200), 10*time.Microsecond)
			})
		}},
		{"skynet/go", reps(3), 0, func(r int) ([]fig, error) {
			return medianOf(r, func() ([]fig, error) { return skynet(size(1000000, 1000)) })
		}},
	}
}
