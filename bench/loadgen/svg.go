package loadgen

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"time"
)

// SVG geometry, in user units.
const (
	svgW, svgH   = 800, 420
	plotL, plotR = 70, 780
	plotT, plotB = 50, 360
	svgBins      = 60
)

// WriteSVG draws res's latency histogram as a standalone SVG image: the
// successful requests' latencies in log-spaced bins from the fastest to
// the slowest (a log time axis, a linear count axis), with the p50, p90,
// p99 and p99.9 marked. With no successful request it draws the frame and
// says so.
func WriteSVG(w io.Writer, res *Result) error {
	var b bytes.Buffer
	title := fmt.Sprintf("loadgen %s %s: %d requests, %.0f/s", res.Mode, res.Target, res.Requests, res.RequestsPerSecond)
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %[1]d %[2]d" font-family="sans-serif" font-size="12">
<title>%s</title>
<rect x="0" y="0" width="%[1]d" height="%[2]d" fill="white"/>
<text x="%[4]d" y="24" font-size="15">%[3]s</text>
`, svgW, svgH, esc(title), plotL)
	fmt.Fprintf(&b, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", plotL, plotB, plotR, plotB)
	fmt.Fprintf(&b, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", plotL, plotT, plotL, plotB)
	fmt.Fprintf(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">latency (log scale)</text>\n", (plotL+plotR)/2, plotB+44)
	fmt.Fprintf(&b, "<text x=\"16\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 16 %d)\">requests</text>\n", (plotT+plotB)/2, (plotT+plotB)/2)

	h := res.Histogram
	if h == nil || h.Count() == 0 {
		fmt.Fprintf(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">no successful requests</text>\n", (plotL+plotR)/2, (plotT+plotB)/2)
		b.WriteString("</svg>\n")
		_, err := w.Write(b.Bytes())
		return err
	}

	// Log-spaced bins over [lo, hi], in nanoseconds.
	lo, hi := math.Max(float64(h.Min()), 1), math.Max(float64(h.Max()), 1)
	if hi/lo < 2 { // widen a narrow range so that the bars have room
		lo, hi = lo/1.5, hi*1.5
	}
	llo, lhi := math.Log10(lo), math.Log10(hi)
	x := func(ns float64) float64 {
		return plotL + (math.Log10(math.Max(ns, lo))-llo)/(lhi-llo)*(plotR-plotL)
	}
	var bins [svgBins]uint64
	for _, bk := range h.Buckets() {
		mid := (float64(bk.Lo) + float64(bk.Hi)) / 2
		i := int((math.Log10(math.Max(mid, lo)) - llo) / (lhi - llo) * svgBins)
		bins[min(max(i, 0), svgBins-1)] += bk.Count
	}
	var top uint64
	for _, n := range bins {
		top = max(top, n)
	}
	// Count axis: 0, half and top.
	for _, f := range []float64{0, 0.5, 1} {
		y := plotB - f*(plotB-plotT)
		fmt.Fprintf(&b, "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", plotL, y, plotR, y)
		fmt.Fprintf(&b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%d</text>\n", plotL-6, y+4, uint64(math.Round(f*float64(top))))
	}
	binW := float64(plotR-plotL) / svgBins
	for i, n := range bins {
		if n == 0 {
			continue
		}
		bh := float64(n) / float64(top) * (plotB - plotT)
		fmt.Fprintf(&b, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"steelblue\"><title>%d requests</title></rect>\n",
			plotL+float64(i)*binW, plotB-bh, math.Max(binW-1, 1), bh, n)
	}
	// Time axis ticks at 1, 2, 5 x 10^k within the range.
	for e := math.Floor(llo); e <= lhi; e++ {
		for _, m := range []float64{1, 2, 5} {
			ns := m * math.Pow(10, e)
			if ns < lo || ns > hi {
				continue
			}
			tx := x(ns)
			fmt.Fprintf(&b, "<line class=\"tick\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"black\"/>\n", tx, plotB, tx, plotB+5)
			fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", tx, plotB+20, esc(time.Duration(ns).String()))
		}
	}
	for k, p := range []struct {
		name string
		q    float64
	}{{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"p99.9", 0.999}} {
		v := h.Quantile(p.q)
		px := x(float64(v))
		fmt.Fprintf(&b, "<line class=\"percentile\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"crimson\" stroke-dasharray=\"4 3\"/>\n", px, plotT, px, plotB)
		// Labels stagger down from the top, on the side with room.
		tx, anchor := px+4, "start"
		if px > plotR-110 {
			tx, anchor = px-4, "end"
		}
		fmt.Fprintf(&b, "<text class=\"percentile\" x=\"%.1f\" y=\"%d\" fill=\"crimson\" stroke=\"white\" stroke-width=\"3\" paint-order=\"stroke\" text-anchor=\"%s\">%s %s</text>\n",
			tx, plotT+14+16*k, anchor, p.name, esc(round3(v).String()))
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// round3 rounds d to three significant digits, for labels.
func round3(d time.Duration) time.Duration {
	m := time.Duration(1)
	for d/m >= 1000 {
		m *= 10
	}
	return d.Round(m)
}

func esc(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
