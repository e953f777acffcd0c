package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// Histogram layout: log-linear, in the manner of HdrHistogram. Values below
// 2^subBits nanoseconds each have their own bucket; above that, every
// power of two [2^k, 2^(k+1)) is split into 2^subBits equal buckets of width
// 2^(k-subBits). A value is therefore known to within 2^-subBits of itself
// (0.79 %), whatever its size, in a bounded number of counters.
const (
	subBits  = 7
	subCount = 1 << subBits
	// maxBits bounds the values kept apart: 2^maxBits ns is about 18.3
	// minutes, far beyond the default timeouts. Larger values fall into
	// the last bucket, and quantiles there report Max, which is exact.
	maxBits    = 40
	numBuckets = (maxBits - subBits + 1) * subCount
)

// RelativeError is the bound on how far a quantile that Histogram reports
// can be from the recorded value it stands for, as a fraction of that value
// (values up to 2^40 ns; below 128 ns the answer is exact).
const RelativeError = 1.0 / subCount

// Histogram counts durations in log-linear buckets of nanoseconds: O(1)
// Record, bounded memory, and mergeable, so each worker keeps its own and
// the run adds them up at the end. The counters of each power of two
// (1 KiB) are allocated when a value first falls there, so a histogram
// costs about 1 KiB per octave its values span (a run's latencies
// typically span 5 to 10), and at most 34 KiB. Quantiles are within
// RelativeError of a recorded value. The zero value is an empty histogram
// ready to use. A Histogram is not safe for concurrent use.
type Histogram struct {
	octaves  [numOctaves]*[subCount]uint64
	total    uint64
	sum      float64 // ns, for the mean
	min, max int64   // ns; valid when total > 0
}

const numOctaves = numBuckets / subCount

func (h *Histogram) count(i int) uint64 {
	if o := h.octaves[i>>subBits]; o != nil {
		return o[i&(subCount-1)]
	}
	return 0
}

// bucketOf returns the index of the bucket that holds v nanoseconds (v >= 0).
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	msb := bits.Len64(v) - 1 // >= subBits
	shift := msb - subBits
	i := (shift+1)<<subBits + int(v>>shift) - subCount
	if i >= numBuckets {
		return numBuckets - 1
	}
	return i
}

// bucketRange returns the smallest and largest value bucket i holds.
func bucketRange(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i)
	}
	shift := i>>subBits - 1
	top := uint64(i&(subCount-1) + subCount)
	lo = top << shift
	return lo, lo + 1<<shift - 1
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	i := bucketOf(uint64(v))
	o := h.octaves[i>>subBits]
	if o == nil {
		o = new([subCount]uint64)
		h.octaves[i>>subBits] = o
	}
	o[i&(subCount-1)]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.sum += float64(v)
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for k, oc := range o.octaves {
		if oc == nil {
			continue
		}
		if h.octaves[k] == nil {
			h.octaves[k] = new([subCount]uint64)
		}
		for j, c := range oc {
			h.octaves[k][j] += c
		}
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// Count returns how many durations were recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Min returns the smallest recorded duration, exactly; 0 when empty.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Max returns the largest recorded duration, exactly; 0 when empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the mean of the recorded durations, exactly up to float64
// rounding; 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(math.Round(h.sum / float64(h.total)))
}

// Quantile returns the duration at or below which a fraction q (0..1) of
// the recorded durations lie: the smallest recorded value v such that at
// least ceil(q*Count) values are <= v, to within RelativeError of v. It is
// reported as the top of v's bucket, clamped to [Min, Max], so it never
// understates. It returns 0 when the histogram is empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(math.Ceil(q * float64(h.total)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i := 0; i < numBuckets; i++ {
		if h.octaves[i>>subBits] == nil {
			i += subCount - 1
			continue
		}
		seen += h.count(i)
		if seen >= rank {
			if i == numBuckets-1 {
				return time.Duration(h.max) // the overflow bucket
			}
			_, hi := bucketRange(i)
			v := int64(min(hi, math.MaxInt64))
			return time.Duration(min(max(v, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// Bucket is one non-empty bucket of a Histogram: Count durations between
// Lo and Hi inclusive.
type Bucket struct {
	Lo, Hi time.Duration
	Count  uint64
}

// Buckets returns the non-empty buckets in increasing order.
func (h *Histogram) Buckets() []Bucket {
	var out []Bucket
	for i := 0; i < numBuckets; i++ {
		c := h.count(i)
		if c == 0 {
			continue
		}
		lo, hi := bucketRange(i)
		out = append(out, Bucket{time.Duration(lo), time.Duration(min(hi, math.MaxInt64)), c})
	}
	return out
}
