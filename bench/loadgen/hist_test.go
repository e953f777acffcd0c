package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestBucketLayout checks that the buckets tile the values without gaps or
// overlaps and that each is narrow enough for RelativeError.
func TestBucketLayout(t *testing.T) {
	var next uint64
	for i := 0; i < numBuckets; i++ {
		lo, hi := bucketRange(i)
		if lo != next {
			t.Fatalf("bucket %d starts at %d; want %d", i, lo, next)
		}
		if hi < lo {
			t.Fatalf("bucket %d: hi %d < lo %d", i, hi, lo)
		}
		if got := bucketOf(lo); got != i {
			t.Fatalf("bucketOf(%d) = %d; want %d", lo, got, i)
		}
		if got := bucketOf(hi); got != i {
			t.Fatalf("bucketOf(%d) = %d; want %d", hi, got, i)
		}
		if w := float64(hi - lo); w > float64(lo)*RelativeError {
			t.Fatalf("bucket %d [%d, %d] is wider than %g of its start", i, lo, hi, RelativeError)
		}
		next = hi + 1
	}
	if next != 1<<maxBits {
		t.Fatalf("buckets end at %d; want 2^%d", next, maxBits)
	}
	if got := bucketOf(math.MaxUint64); got != numBuckets-1 {
		t.Errorf("bucketOf(max) = %d; want the last bucket", got)
	}
}

// exactQuantile is the definition Quantile approximates.
func exactQuantile(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

// TestQuantilePrecision records values spread over many magnitudes and
// holds every reported quantile within the documented bound of the exact
// one, from above.
func TestQuantilePrecision(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		gen  func() int64
	}{
		{"uniform 0-1ms", func() int64 { return r.Int64N(1e6) }},
		{"log-uniform 1ns-100s", func() int64 { return int64(math.Exp(r.Float64() * math.Log(1e11))) }},
		{"small exact", func() int64 { return r.Int64N(subCount) }},
		{"bimodal", func() int64 {
			if r.IntN(100) == 0 {
				return 2e9 + r.Int64N(1e6)
			}
			return 50e3 + r.Int64N(5e3)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			vals := make([]int64, 100000)
			for i := range vals {
				vals[i] = tc.gen()
				h.Record(time.Duration(vals[i]))
			}
			slices.Sort(vals)
			if h.Min() != time.Duration(vals[0]) || h.Max() != time.Duration(vals[len(vals)-1]) {
				t.Errorf("min, max = %d, %d; want %d, %d", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
			}
			for _, q := range []float64{0, 0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1} {
				want := exactQuantile(vals, q)
				got := int64(h.Quantile(q))
				if got < want || float64(got-want) > float64(want)*RelativeError {
					t.Errorf("Quantile(%g) = %d; want %d within +%g", q, got, want, RelativeError)
				}
			}
		})
	}
}

func TestQuantileKnown(t *testing.T) {
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 500 * time.Microsecond},
		{0.9, 900 * time.Microsecond},
		{0.99, 990 * time.Microsecond},
		{0.999, 999 * time.Microsecond},
		{1, 1000 * time.Microsecond},
	} {
		got := h.Quantile(tc.q)
		if got < tc.want || float64(got-tc.want) > float64(tc.want)*RelativeError {
			t.Errorf("Quantile(%g) = %v; want %v (+%.2f%%)", tc.q, got, tc.want, 100*RelativeError)
		}
	}
	if got, want := h.Mean(), 500500*time.Nanosecond; got != want {
		t.Errorf("Mean = %v; want %v", got, want)
	}
	if h.Count() != 1000 {
		t.Errorf("Count = %d; want 1000", h.Count())
	}
	// 1 µs to 1 ms spans 10 octaves, 11 with the one it starts in.
	n := 0
	for _, o := range h.octaves {
		if o != nil {
			n++
		}
	}
	if n > 11 {
		t.Errorf("%d octaves allocated; want at most 11", n)
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 || h.Max() != 0 || len(h.Buckets()) != 0 {
		t.Error("empty histogram: want zeros and no buckets")
	}
	h.Record(-5)
	if h.Min() != 0 || h.Quantile(1) != 0 {
		t.Errorf("negative duration: min %v, p100 %v; want 0", h.Min(), h.Quantile(1))
	}
	big := time.Duration(1) << 50 // beyond the tracked range
	h.Record(big)
	if got := h.Quantile(1); got != big {
		t.Errorf("overflow: p100 = %v; want %v", got, big)
	}
	h.Record(3 * time.Millisecond)
	b := h.Buckets()
	if len(b) != 3 || b[0].Lo != 0 || b[1].Lo > 3*time.Millisecond || b[1].Hi < 3*time.Millisecond {
		t.Errorf("buckets = %+v", b)
	}
}

// TestMerge: merging per-worker histograms equals recording everything in one.
func TestMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var all, merged Histogram
	parts := make([]Histogram, 4)
	for i := 0; i < 40000; i++ {
		d := time.Duration(r.Int64N(int64(time.Second)))
		all.Record(d)
		parts[i%len(parts)].Record(d)
	}
	var empty Histogram
	merged.Merge(&empty)
	for i := range parts {
		merged.Merge(&parts[i])
	}
	if !slices.Equal(merged.Buckets(), all.Buckets()) || merged.total != all.total || merged.min != all.min || merged.max != all.max {
		t.Fatal("merged histogram differs from the one that recorded everything")
	}
	if d := math.Abs(merged.sum - all.sum); d > 1e-6*all.sum {
		t.Errorf("sum %g; want %g", merged.sum, all.sum)
	}
}

// TestRecordAllocs: once its octave exists, recording allocates nothing.
func TestRecordAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	var h Histogram
	h.Record(time.Millisecond)
	if a := testing.AllocsPerRun(1000, func() { h.Record(time.Millisecond + 7) }); a != 0 {
		t.Errorf("%v allocations per Record; want 0", a)
	}
}
