// Measures goroutines with the workloads of examples/threads_vs_tasks.rs, for chapters 1 and 6
// of the book (docs/src/processes-threads-coroutines.md, docs/src/go-m-n.md).
//
//	go run goroutines.go              # GOMAXPROCS=1: one thread runs Go code, like one loop
//	go run goroutines.go -procs 2     # M:N on two threads
//
// Each workload runs in a fresh process (this program, started again with -child), -runs times
// (default 3); the medians are printed.
//
//   - spawn: start N goroutines that only call wg.Done(), then wg.Wait(): time per goroutine.
//   - parked: N goroutines each block receiving from one channel; once all are parked, the
//     growth of VmRSS divided by N: bytes per parked goroutine.
//   - sleeping: N goroutines each time.Sleep(500 ms): VmRSS growth per goroutine, and wall time.
//   - pingpong: two goroutines pass a number back and forth over two unbuffered channels: time
//     per hand-off.
//   - cpu: 4 goroutines each run 100 million steps of a xorshift generator: the wall time, which
//     more threads (-procs) can divide.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func vmRSS() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) >= 2 && fields[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(fields[1], 64)
			return kb * 1024
		}
	}
	panic("no VmRSS in /proc/self/status (Linux only)")
}

// waitStarted gives the thread to the other goroutines until n of them have counted themselves
// in started (just before they block), then once more, so that the last one blocks too.
func waitStarted(started *int64, n int) {
	for atomic.LoadInt64(started) < int64(n) {
		runtime.Gosched()
	}
	runtime.Gosched()
}

func spawn(n int) map[string]float64 {
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
	return map[string]float64{"ns_per_goroutine": float64(time.Since(t0).Nanoseconds()) / float64(n)}
}

func parked(n int) map[string]float64 {
	ch := make(chan struct{})
	var wg sync.WaitGroup
	var started int64
	before := vmRSS()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() { atomic.AddInt64(&started, 1); <-ch; wg.Done() }()
	}
	waitStarted(&started, n)
	after := vmRSS()
	close(ch)
	wg.Wait()
	return map[string]float64{"rss_bytes_per_goroutine": (after - before) / float64(n)}
}

func sleeping(n int) map[string]float64 {
	var wg sync.WaitGroup
	var started int64
	before := vmRSS()
	t0 := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() { atomic.AddInt64(&started, 1); time.Sleep(500 * time.Millisecond); wg.Done() }()
	}
	waitStarted(&started, n)
	after := vmRSS()
	wg.Wait()
	return map[string]float64{
		"sleep_rss_bytes_per_goroutine": (after - before) / float64(n),
		"sleep_wall_s":                  time.Since(t0).Seconds(),
	}
}

func pingpong(roundTrips int) map[string]float64 {
	pings, pongs := make(chan int), make(chan int)
	go func() {
		for v := range pings {
			pongs <- v + 1
		}
	}()
	t0 := time.Now()
	v := 0
	for i := 0; i < roundTrips; i++ {
		pings <- v
		v = <-pongs
	}
	elapsed := time.Since(t0)
	close(pings)
	if v != roundTrips {
		panic("lost a ping")
	}
	return map[string]float64{"ns_per_handoff": float64(elapsed.Nanoseconds()) / float64(2*roundTrips)}
}

func cpu() map[string]float64 {
	const workers, steps = 4, 100_000_000
	var wg sync.WaitGroup
	results := make([]uint64, workers)
	t0 := time.Now()
	wg.Add(workers)
	for w := 0; w < workers; w++ {
		go func(w int) {
			x := uint64(w + 1)
			for i := 0; i < steps; i++ {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
			}
			results[w] = x
			wg.Done()
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(t0)
	if results[0] == 0 {
		panic("xorshift never reaches 0")
	}
	return map[string]float64{"cpu_wall_s": elapsed.Seconds()}
}

var workloads = []string{"spawn", "parked", "sleeping", "pingpong", "cpu"}

func runChild(name string, n, roundTrips int) {
	var figures map[string]float64
	switch name {
	case "spawn":
		figures = spawn(n)
	case "parked":
		figures = parked(n)
	case "sleeping":
		figures = sleeping(n)
	case "pingpong":
		figures = pingpong(roundTrips)
	case "cpu":
		figures = cpu()
	default:
		panic("unknown workload " + name)
	}
	var parts []string
	for k, v := range figures {
		parts = append(parts, fmt.Sprintf("%s=%g", k, v))
	}
	fmt.Println(strings.Join(parts, " "))
}

func main() {
	n := flag.Int("n", 100000, "goroutines")
	roundTrips := flag.Int("round-trips", 100000, "ping-pong round trips")
	runs := flag.Int("runs", 3, "fresh processes per workload (median)")
	procs := flag.Int("procs", 1, "GOMAXPROCS")
	child := flag.String("child", "", "(internal) run one workload")
	flag.Parse()
	runtime.GOMAXPROCS(*procs)
	if *child != "" {
		runChild(*child, *n, *roundTrips)
		return
	}
	fmt.Printf("%s, GOMAXPROCS=%d: %d goroutines, median of %d runs\n", runtime.Version(), *procs, *n, *runs)
	for _, name := range workloads {
		values := map[string][]float64{}
		var keys []string
		for r := 0; r < *runs; r++ {
			out, err := exec.Command(os.Args[0], "-child", name, "-n", strconv.Itoa(*n),
				"-round-trips", strconv.Itoa(*roundTrips), "-procs", strconv.Itoa(*procs)).Output()
			if err != nil {
				panic(err)
			}
			for _, kv := range strings.Fields(string(out)) {
				k, v, _ := strings.Cut(kv, "=")
				f, _ := strconv.ParseFloat(v, 64)
				if r == 0 {
					keys = append(keys, k)
				}
				values[k] = append(values[k], f)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			vs := values[k]
			sort.Float64s(vs)
			fmt.Printf("%-20s %-32s %12.3f\n", name, k, vs[len(vs)/2])
		}
	}
}
