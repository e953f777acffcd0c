package loadgen

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

type svgDoc struct {
	XMLName xml.Name
	Title   string `xml:"title"`
	Rects   []struct {
		Class  string  `xml:"class,attr"`
		Height float64 `xml:"height,attr"`
	} `xml:"rect"`
	Lines []struct {
		Class string `xml:"class,attr"`
	} `xml:"line"`
	Texts []string `xml:"text"`
}

// parseSVG checks that b is well-formed XML throughout and decodes it.
func parseSVG(t *testing.T, b []byte) svgDoc {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		_, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, b)
		}
	}
	var doc svgDoc
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.XMLName.Space != "http://www.w3.org/2000/svg" || doc.XMLName.Local != "svg" {
		t.Fatalf("root element %v; want svg in the SVG namespace", doc.XMLName)
	}
	return doc
}

func TestSVG(t *testing.T) {
	res := &Result{Mode: HTTP1, Target: `http://a/?x=<&>"`, Requests: 1000, Histogram: new(Histogram)}
	for i := 1; i <= 1000; i++ {
		res.Histogram.Record(time.Duration(i) * 10 * time.Microsecond)
	}
	var b bytes.Buffer
	if err := WriteSVG(&b, res); err != nil {
		t.Fatal(err)
	}
	doc := parseSVG(t, b.Bytes())
	if !strings.Contains(doc.Title, `x=<&>"`) {
		t.Errorf("title %q lacks the target, unescaped", doc.Title)
	}
	bars, tallest := 0, 0.0
	for _, r := range doc.Rects {
		if r.Class == "bar" {
			bars++
			tallest = max(tallest, r.Height)
		}
	}
	if bars < 10 || bars > svgBins || tallest != plotB-plotT {
		t.Errorf("%d bars, tallest %g; want 10..%d bars, the tallest %d high", bars, tallest, svgBins, plotB-plotT)
	}
	lines := map[string]int{}
	for _, l := range doc.Lines {
		lines[l.Class]++
	}
	if lines["percentile"] != 4 || lines["axis"] != 2 || lines["tick"] == 0 {
		t.Errorf("lines by class %v; want 4 percentiles, 2 axes, ticks", lines)
	}
	texts := strings.Join(doc.Texts, "|")
	for _, want := range []string{"p50 5.01ms", "p90 9.04ms", "p99 9.96ms", "p99.9 10ms", "latency"} {
		if !strings.Contains(texts, want) {
			t.Errorf("texts %q lack %q", texts, want)
		}
	}
}

func TestSVGEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSVG(&b, &Result{Mode: WS, Target: "ws://a/", Histogram: new(Histogram)}); err != nil {
		t.Fatal(err)
	}
	doc := parseSVG(t, b.Bytes())
	if !strings.Contains(strings.Join(doc.Texts, "|"), "no successful requests") {
		t.Errorf("texts %q", doc.Texts)
	}
}

// TestSVGOneValue: every request took the same time; the range is widened
// so that the bar has room.
func TestSVGOneValue(t *testing.T) {
	res := &Result{Mode: TCP, Target: "a:1", Histogram: new(Histogram)}
	for range 10 {
		res.Histogram.Record(time.Millisecond)
	}
	var b bytes.Buffer
	if err := WriteSVG(&b, res); err != nil {
		t.Fatal(err)
	}
	doc := parseSVG(t, b.Bytes())
	n := 0
	for _, r := range doc.Rects {
		if r.Class == "bar" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d bars; want 1", n)
	}
}
