import Foundation
import StableRandom

/// Hand-made inline SVG charts for the run report: no script, no network, readable when printed.
enum SVGChart {
    static let palette = [
        "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
    ]
    /// Lighter companions of `palette`, used once its ten colours are taken (Tableau 20).
    static let lightPalette = [
        "#a0cbe8", "#ffbe7d", "#8cd17d", "#ff9d9a", "#86bcb6", "#f1ce63", "#d4a6c8", "#fabfd2", "#d7b5a6", "#79706e",
    ]

    static func color(_ i: Int) -> String { palette[i % palette.count] }

    /// A colour per name that depends on the name, not on its position: the same RM or family has the
    /// same colour in every report. Each name prefers the palette slot its stable hash picks; names are
    /// placed in sorted order, and a taken slot passes to the next free one (so two names never share
    /// a colour while there are colours left).
    static func stableColors(_ names: [String]) -> [String: String] {
        var out: [String: String] = [:]
        var taken = Set<Int>()
        let all = palette + lightPalette
        for (k, name) in Set(names).sorted().enumerated() {
            let preferred = Int(FNV1a.hash(name.utf8) % UInt64(palette.count))
            let slot = (0..<all.count).lazy.map { (preferred + $0) % all.count }.first { !taken.contains($0) }
            if let slot { taken.insert(slot); out[name] = all[slot] } else { out[name] = all[k % all.count] }
        }
        return out
    }

    struct Series {
        var name: String
        var color: String
        var points: [(x: Double, y: Double)]
        /// Dots only (no line).
        var dotsOnly = false
        var dashed = false
        var faint = false
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func num(_ x: Double) -> String { String(format: "%.1f", x) }

    /// The drawing width of charts that span the page (they scale to the column's width; see the
    /// report's CSS).
    static let defaultWidth = 1100.0

    /// About `count` round tick values covering lo...hi.
    static func ticks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
        guard hi > lo, lo.isFinite, hi.isFinite else { return [lo] }
        let raw = (hi - lo) / Double(max(1, count))
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        var t = ceil(lo / step) * step
        var out: [Double] = []
        while t <= hi + step * 1e-9 { out.append(abs(t) < step * 1e-9 ? 0 : t); t += step }
        return out
    }

    /// About `count` whole-number ticks covering lo...hi, a step of 1, 2 or 5 times a power of ten.
    static func wholeTicks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
        guard hi > lo, lo.isFinite, hi.isFinite else { return [lo.rounded()] }
        let raw = (hi - lo) / Double(max(1, count))
        var magnitude = 1.0
        while [1.0, 2, 5].allSatisfy({ $0 * magnitude < raw }) { magnitude *= 10 }
        let step = [1.0, 2, 5].map { $0 * magnitude }.first { $0 >= raw }!
        return Array(stride(from: ceil(lo / step) * step, through: hi, by: step))
    }

    static func label(_ x: Double) -> String {
        if x == x.rounded() && abs(x) < 1e9 { return String(Int(x)) }
        if abs(x) >= 100 { return String(format: "%.0f", x) }
        if abs(x) >= 1 { return String(format: "%.1f", x) }
        return String(format: "%.2f", x)
    }

    /// A line chart with axes, ticks, axis titles and a legend.
    /// `gapAfter`: consecutive points further apart than this on x are not joined (an outage between a
    /// crash and a resume shows as a gap, not as a straight line across it).
    static func lines(
        id: String, title: String, xTitle: String, yTitle: String, series: [Series],
        yRange: ClosedRange<Double>? = nil, width: Double = defaultWidth, height: Double = 280,
        gapAfter: Double = .infinity, integerX: Bool = false
    ) -> String {
        let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        guard !all.isEmpty else { return "" }
        var xLo = all.map(\.x).min()!, xHi = all.map(\.x).max()!
        if xHi == xLo { xLo -= 1; xHi += 1 }
        var yLo = yRange?.lowerBound ?? all.map(\.y).min()!, yHi = yRange?.upperBound ?? all.map(\.y).max()!
        if yRange == nil {
            let pad = (yHi - yLo) * 0.08; yLo -= pad; yHi += pad;
            if yLo > 0 && all.map(\.y).min()! >= 0 && yLo < (yHi - yLo) * 0.5 { yLo = 0 }
        }
        if yHi == yLo { yLo -= 0.5; yHi += 0.5 }
        let left = 60.0, right = 20.0, top = 30.0, bottom = 46.0
        let legendHeight = 18.0 * Double((series.count + 3) / 4)
        let plotW = width - left - right, plotH = height - top - bottom
        func px(_ x: Double) -> Double { left + (x - xLo) / (xHi - xLo) * plotW }
        func py(_ y: Double) -> Double { top + (1 - (y - yLo) / (yHi - yLo)) * plotH }
        var svg = open(id: id, title: title, width: width, height: height + legendHeight)
        // Iterations and batches are counted: no tick at 1.5.
        let xTicks = integerX ? wholeTicks(xLo, xHi) : ticks(xLo, xHi)
        svg += axes(
            left: left, top: top, plotW: plotW, plotH: plotH, xTicks: xTicks.map { (px($0), label($0)) },
            yTicks: ticks(yLo, yHi).map { (py($0), label($0)) }, xTitle: xTitle, yTitle: yTitle, height: height)
        for s in series {
            let pts = s.points.filter { $0.x.isFinite && $0.y.isFinite }
            guard !pts.isEmpty else { continue }
            if !s.dotsOnly && pts.count > 1 {
                let d = pts.enumerated().map { i, p in
                    (i == 0 || p.x - pts[i - 1].x > gapAfter ? "M" : "L") + "\(num(px(p.x))),\(num(py(p.y)))"
                }.joined(separator: " ")
                svg +=
                    "<path class=\"series\" d=\"\(d)\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"\(s.faint ? 1 : 2)\"\(s.dashed ? " stroke-dasharray=\"5 4\"" : "")\(s.faint ? " opacity=\"0.5\"" : "")><title>\(escape(s.name))</title></path>\n"
            }
            if s.dotsOnly || pts.count <= 30 {
                for p in pts {
                    // Marks big enough to read at the page's width; a white rim keeps overlapping ones apart.
                    svg +=
                        "<circle cx=\"\(num(px(p.x)))\" cy=\"\(num(py(p.y)))\" r=\"\(s.dotsOnly ? (pts.count > 300 ? 3 : 4) : 3.5)\" fill=\"\(s.color)\" stroke=\"#fff\" stroke-width=\"0.8\"\(s.dotsOnly ? " opacity=\"0.7\"" : "")><title>\(escape(s.name)): \(label(p.x)), \(String(format: "%.3f", p.y))</title></circle>\n"
                }
            }
        }
        svg += legend(series.filter { !$0.faint }.map { ($0.name, $0.color) }, x: left, y: height + 4, width: plotW)
        return svg + "</svg>\n"
    }

    /// Stacked bars: one bar per x category, segments per series (values are shares or counts).
    static func stackedBars(
        id: String, title: String, xTitle: String, yTitle: String, categories: [String],
        series: [(name: String, color: String, values: [Double])], normalise: Bool,
        width: Double = defaultWidth, height: Double = 220
    ) -> String {
        guard !categories.isEmpty else { return "" }
        let left = 60.0, right = 20.0, top = 30.0, bottom = 46.0
        let legendHeight = 18.0 * Double((series.count + 3) / 4)
        let plotW = width - left - right, plotH = height - top - bottom
        let totals = categories.indices.map { i in series.reduce(0) { $0 + $1.values[i] } }
        let yHi = normalise ? 1 : max(1, totals.max() ?? 1)
        let slot = plotW / Double(categories.count)
        // Bars touch: a share over time reads as one band per RM, with no white between bins.
        let barW = slot
        var svg = open(id: id, title: title, width: width, height: height + legendHeight)
        let stride = max(1, categories.count / 12)
        let xTicks = categories.indices.filter { $0 % stride == 0 }.map {
            (left + (Double($0) + 0.5) * slot, categories[$0])
        }
        let yTicks = ticks(0, yHi).map {
            (top + (1 - $0 / yHi) * plotH, normalise ? "\(Int(($0 * 100).rounded()))%" : label($0))
        }
        svg += axes(
            left: left, top: top, plotW: plotW, plotH: plotH, xTicks: xTicks, yTicks: yTicks, xTitle: xTitle,
            yTitle: yTitle, height: height)
        for (i, category) in categories.enumerated() {
            var y = top + plotH
            let total = totals[i]
            guard total > 0 else { continue }
            for s in series where s.values[i] > 0 {
                let v = normalise ? s.values[i] / total : s.values[i]
                let h = v / yHi * plotH
                y -= h
                let x = left + Double(i) * slot + (slot - barW) / 2
                let share = Int((100 * s.values[i] / total).rounded())
                svg +=
                    "<rect class=\"bar\" x=\"\(num(x))\" y=\"\(num(y))\" width=\"\(num(barW))\" height=\"\(num(h))\" fill=\"\(s.color)\"><title>\(escape(category)): \(escape(s.name)) \(share)% (\(label(s.values[i])))</title></rect>\n"
            }
        }
        svg += legend(series.map { ($0.name, $0.color) }, x: left, y: height + 4, width: plotW)
        return svg + "</svg>\n"
    }

    /// A K x K matrix of values in 0...1 with their counts, as coloured cells.
    static func heatmap(
        id: String, title: String, names: [String], value: (Int, Int) -> Double?, count: (Int, Int) -> Int
    ) -> String {
        let cell = 78.0, labelW = 150.0, top = 120.0
        let width = labelW + cell * Double(names.count) + 20, height = top + cell * Double(names.count) + 20
        var svg = open(id: id, title: title, width: width, height: height, wide: false)
        for (j, n) in names.enumerated() {
            let x = labelW + (Double(j) + 0.5) * cell
            svg +=
                "<text class=\"axis\" transform=\"translate(\(num(x)),\(num(top - 8))) rotate(-35)\" text-anchor=\"start\">\(escape(n))</text>\n"
        }
        for (i, n) in names.enumerated() {
            let y = top + Double(i) * cell
            svg +=
                "<text class=\"axis\" x=\"\(num(labelW - 8))\" y=\"\(num(y + cell / 2 + 4))\" text-anchor=\"end\">\(escape(n))</text>\n"
            for j in names.indices {
                let x = labelW + Double(j) * cell
                let v = value(i, j)
                let fill = v.map { shade($0) } ?? "#eeeeee"
                let text = v.map { String(format: "%.2f", $0) } ?? "n/a"
                svg +=
                    "<rect class=\"cell\" x=\"\(num(x))\" y=\"\(num(y))\" width=\"\(num(cell - 2))\" height=\"\(num(cell - 2))\" fill=\"\(fill)\"><title>\(escape(names[i])) vs \(escape(names[j])): \(text) over \(count(i, j)) pairs</title></rect>\n"
                let dark = (v ?? 0) > 0.6
                svg +=
                    "<text x=\"\(num(x + cell / 2 - 1))\" y=\"\(num(y + cell / 2))\" text-anchor=\"middle\" class=\"cellv\" fill=\"\(dark ? "#fff" : "#222")\">\(text)</text>\n"
                svg +=
                    "<text x=\"\(num(x + cell / 2 - 1))\" y=\"\(num(y + cell / 2 + 15))\" text-anchor=\"middle\" class=\"celln\" fill=\"\(dark ? "#eee" : "#555")\">n=\(count(i, j))</text>\n"
            }
        }
        return svg + "</svg>\n"
    }

    /// White to deep blue.
    static func shade(_ v: Double) -> String {
        let t = max(0, min(1, v))
        let r = Int(247 - t * (247 - 33)), g = Int(251 - t * (251 - 102)), b = Int(255 - t * (255 - 172))
        return String(format: "#%02x%02x%02x", r, g, b)
    }

    /// `wide`: the chart spans the column (`svg.chart.wide` in the report's CSS); otherwise it keeps its
    /// own size, shrinking only on narrow screens.
    private static func open(id: String, title: String, width: Double, height: Double, wide: Bool = true) -> String {
        "<svg id=\"\(id)\" class=\"chart\(wide ? " wide" : "")\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(num(width)) \(num(height))\" width=\"\(num(width))\" height=\"\(num(height))\" role=\"img\" aria-label=\"\(escape(title))\">\n<title>\(escape(title))</title>\n"
    }

    private static func axes(
        left: Double, top: Double, plotW: Double, plotH: Double, xTicks: [(Double, String)], yTicks: [(Double, String)],
        xTitle: String, yTitle: String, height: Double
    ) -> String {
        var s = ""
        for (y, text) in yTicks {
            s +=
                "<line x1=\"\(num(left))\" y1=\"\(num(y))\" x2=\"\(num(left + plotW))\" y2=\"\(num(y))\" class=\"grid\"/>\n"
            s +=
                "<text x=\"\(num(left - 6))\" y=\"\(num(y + 4))\" text-anchor=\"end\" class=\"axis\">\(escape(text))</text>\n"
        }
        for (x, text) in xTicks {
            s +=
                "<line x1=\"\(num(x))\" y1=\"\(num(top + plotH))\" x2=\"\(num(x))\" y2=\"\(num(top + plotH + 4))\" class=\"tick\"/>\n"
            s +=
                "<text x=\"\(num(x))\" y=\"\(num(top + plotH + 17))\" text-anchor=\"middle\" class=\"axis\">\(escape(text))</text>\n"
        }
        s +=
            "<rect x=\"\(num(left))\" y=\"\(num(top))\" width=\"\(num(plotW))\" height=\"\(num(plotH))\" class=\"frame\"/>\n"
        s +=
            "<text x=\"\(num(left + plotW / 2))\" y=\"\(num(height - 10))\" text-anchor=\"middle\" class=\"title\">\(escape(xTitle))</text>\n"
        s +=
            "<text transform=\"translate(14,\(num(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\" class=\"title\">\(escape(yTitle))</text>\n"
        return s
    }

    private static func legend(_ items: [(String, String)], x: Double, y: Double, width: Double) -> String {
        var s = ""
        let column = width / 4
        for (i, (name, color)) in items.enumerated() {
            let cx = x + Double(i % 4) * column, cy = y + 18 * Double(i / 4)
            s += "<rect x=\"\(num(cx))\" y=\"\(num(cy))\" width=\"12\" height=\"12\" fill=\"\(color)\"/>"
            s += "<text x=\"\(num(cx + 17))\" y=\"\(num(cy + 10))\" class=\"legend\">\(escape(name))</text>\n"
        }
        return s
    }
}
