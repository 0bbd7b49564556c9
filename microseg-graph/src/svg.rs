//! SVG output: layout by the `layout-rs` crate, drawing by a render backend of
//! our own (stable output, sans-serif text, edge labels on a white halo, one
//! arrow head per colour, the caption below the picture).

use crate::{style, Graph, GraphError, NodeKind};
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::format::{ClipHandle, RenderBackend};
use layout::core::geometry::Point;
use layout::core::style::{LineStyleKind, StyleAttr};
use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
use layout::topo::layout::VisualGraph;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Font size of a node's name.
const NODE_FONT: f64 = 15.0;
/// Font size of the other lines of a node, of edge labels and of the caption.
const SMALL_FONT: f64 = 12.0;
/// The font size edge labels are given for the layout. layout-rs sizes a label
/// as one em per character, about twice what sans-serif text takes; this size
/// makes it reserve about the room the label drawn at [`SMALL_FONT`] needs.
/// It also tells the canvas that a text is an edge label.
const LABEL_LAYOUT_FONT: usize = 8;
/// Average advance of a sans-serif glyph, in em.
const CHAR_EM: f64 = 0.6;
/// Line height, in em.
const LINE_EM: f64 = 1.25;
/// Margin around the picture.
const MARGIN: f64 = 16.0;
/// Text colour of node labels.
const INK: &str = "#111827";
/// Text colour of secondary lines and the caption.
const GREY: &str = "#374151";

pub(crate) fn render(g: &Graph) -> Result<String, GraphError> {
    let mut vg = VisualGraph::new(Orientation::LeftToRight);
    let mut handles = BTreeMap::new();
    for n in &g.nodes {
        let st = style::node(n);
        let label = format!("{}\n{}", n.name, n.subtitle());
        let (w, h) = text_box(&label, NODE_FONT);
        let look = StyleAttr::new(
            color(st.stroke),
            2,
            Some(color(st.fill)),
            10,
            NODE_FONT as usize,
        );
        let (shape, size) = if n.kind == NodeKind::Outside {
            (
                ShapeKind::Circle(label),
                Point::new(w * 1.2 + 16.0, h * 1.3 + 8.0),
            )
        } else {
            (ShapeKind::Box(label), Point::new(w + 24.0, h + 14.0))
        };
        let el = Element::create(shape, look, Orientation::TopToBottom, size);
        handles.insert(n.name.clone(), vg.add_node(el));
    }
    let arrow = |label: &str, stroke: &str, dashed: bool| {
        let look = StyleAttr::new(color(stroke), 2, None, 0, LABEL_LAYOUT_FONT);
        let line = if dashed {
            LineStyleKind::Dashed
        } else {
            LineStyleKind::Normal
        };
        Arrow::new(
            LineEndKind::None,
            LineEndKind::Arrow,
            line,
            label,
            &look,
            &None,
            &None,
        )
    };
    for e in &g.edges {
        if let (Some(&a), Some(&b)) = (handles.get(&e.from), handles.get(&e.to)) {
            vg.add_edge(arrow(&e.label(), style::ALLOW, e.is_partial()), a, b);
        }
    }
    for bl in &g.blocks {
        if let (Some(&a), Some(&b)) = (handles.get(&bl.from), handles.get(&bl.to)) {
            let label = format!("{}\n{}", bl.label(), bl.note());
            vg.add_edge(arrow(&label, style::BLOCK, true), a, b);
        }
    }
    let mut canvas = Canvas::default();
    catch_unwind(AssertUnwindSafe(|| {
        vg.do_it(false, false, false, &mut canvas)
    }))
    .map_err(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the layout engine panicked".into());
        GraphError::Layout(msg)
    })?;
    Ok(canvas.finish(&g.caption()))
}

/// Width and height of a node label: first line at `first` px, the rest smaller.
fn text_box(text: &str, first: f64) -> (f64, f64) {
    let mut w: f64 = 0.0;
    let mut h = 0.0;
    for (i, line) in text.lines().enumerate() {
        let size = if i == 0 { first } else { SMALL_FONT };
        let bold = if i == 0 { 1.08 } else { 1.0 };
        w = w.max(line.chars().count() as f64 * CHAR_EM * size * bold);
        h += size * LINE_EM;
    }
    (w, h)
}

fn color(hex: &str) -> Color {
    Color::fast(hex)
}

/// `#rrggbb` (or `none`) of a layout-rs colour (`#rrggbbaa`).
fn hex(c: Color) -> String {
    let web = c.to_web_color();
    if web.ends_with("00") && web.len() == 9 {
        "none".into()
    } else {
        web[..7].to_string()
    }
}

/// A number in the SVG: one decimal, no `-0`.
fn n(x: f64) -> String {
    let s = format!("{x:.1}");
    if s == "-0.0" {
        "0.0".into()
    } else {
        s
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The render backend: collects the drawing in layers, then writes the document.
#[derive(Default)]
struct Canvas {
    shapes: String,
    arrows: String,
    texts: String,
    clips: Vec<String>,
    markers: BTreeSet<String>,
    bounds: Option<(Point, Point)>,
}

impl Canvas {
    fn grow(&mut self, lo: Point, hi: Point) {
        self.bounds = Some(match self.bounds {
            None => (lo, hi),
            Some((a, b)) => (
                Point::new(a.x.min(lo.x), a.y.min(lo.y)),
                Point::new(b.x.max(hi.x), b.y.max(hi.y)),
            ),
        });
    }

    fn props(properties: &Option<String>) -> String {
        properties
            .as_ref()
            .map(|p| format!(" {p}"))
            .unwrap_or_default()
    }

    /// The finished document, the caption below the picture.
    fn finish(mut self, caption: &[String]) -> String {
        let (lo, hi) = self.bounds.unwrap_or((Point::zero(), Point::zero()));
        let mut y = hi.y + 28.0;
        let mut caption_svg = String::new();
        for (i, line) in caption.iter().enumerate() {
            let (size, weight) = if i == 0 {
                (14.0, " font-weight=\"bold\"")
            } else {
                (SMALL_FONT, "")
            };
            let _ = writeln!(
                caption_svg,
                "<text x=\"{}\" y=\"{}\" font-size=\"{}\" fill=\"{}\"{weight} xml:space=\"preserve\">{}</text>",
                n(lo.x),
                n(y),
                size,
                if i == 0 { INK } else { GREY },
                esc(line)
            );
            let width = line.chars().count() as f64 * CHAR_EM * size;
            self.grow(
                Point::new(lo.x, y - size),
                Point::new(lo.x + width, y + 4.0),
            );
            y += size * 1.4;
        }
        let (lo, hi) = self.bounds.unwrap_or((Point::zero(), Point::zero()));
        let (x0, y0) = (lo.x - MARGIN, lo.y - MARGIN);
        let (w, h) = (hi.x - lo.x + 2.0 * MARGIN, hi.y - lo.y + 2.0 * MARGIN);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"{} {} {} {}\" font-family=\"Helvetica, Arial, sans-serif\">",
            n(w.ceil()),
            n(h.ceil()),
            n(x0),
            n(y0),
            n(w.ceil()),
            n(h.ceil())
        );
        out.push_str("<defs>\n");
        for m in &self.markers {
            let _ = writeln!(
                out,
                "<marker id=\"head-{m}\" markerWidth=\"10\" markerHeight=\"8\" refX=\"10\" refY=\"4\" orient=\"auto\" markerUnits=\"userSpaceOnUse\"><path d=\"M0,0 L10,4 L0,8 z\" fill=\"#{m}\"/></marker>"
            );
            // For edges layout-rs turned around: the head sits at the path's start.
            let _ = writeln!(
                out,
                "<marker id=\"tail-{m}\" markerWidth=\"10\" markerHeight=\"8\" refX=\"0\" refY=\"4\" orient=\"auto\" markerUnits=\"userSpaceOnUse\"><path d=\"M10,0 L0,4 L10,8 z\" fill=\"#{m}\"/></marker>"
            );
        }
        for c in &self.clips {
            out.push_str(c);
            out.push('\n');
        }
        out.push_str("</defs>\n");
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>",
            n(x0),
            n(y0),
            n(w.ceil()),
            n(h.ceil())
        );
        out.push_str("<g class=\"nodes\">\n");
        out.push_str(&self.shapes);
        out.push_str("</g>\n<g class=\"edges\">\n");
        out.push_str(&self.arrows);
        out.push_str("</g>\n<g class=\"labels\">\n");
        out.push_str(&self.texts);
        out.push_str("</g>\n<g class=\"caption\">\n");
        out.push_str(&caption_svg);
        out.push_str("</g>\n</svg>\n");
        out
    }
}

impl RenderBackend for Canvas {
    fn draw_rect(
        &mut self,
        xy: Point,
        size: Point,
        look: &StyleAttr,
        properties: Option<String>,
        clip: Option<ClipHandle>,
    ) {
        self.grow(xy, Point::new(xy.x + size.x, xy.y + size.y));
        let clip = clip
            .map(|c| format!(" clip-path=\"url(#clip{c})\""))
            .unwrap_or_default();
        let _ = writeln!(
            self.shapes,
            "<rect{} x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"{}\" fill=\"{}\" stroke=\"{}\" stroke-width=\"{}\"{clip}/>",
            Self::props(&properties),
            n(xy.x),
            n(xy.y),
            n(size.x),
            n(size.y),
            look.rounded,
            look.fill_color.map(hex).unwrap_or_else(|| "none".into()),
            hex(look.line_color),
            look.line_width
        );
    }

    fn draw_line(
        &mut self,
        start: Point,
        stop: Point,
        look: &StyleAttr,
        properties: Option<String>,
    ) {
        self.grow(
            Point::new(start.x.min(stop.x), start.y.min(stop.y)),
            Point::new(start.x.max(stop.x), start.y.max(stop.y)),
        );
        let _ = writeln!(
            self.arrows,
            "<line{} x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"{}\"/>",
            Self::props(&properties),
            n(start.x),
            n(start.y),
            n(stop.x),
            n(stop.y),
            hex(look.line_color),
            look.line_width
        );
    }

    fn draw_circle(
        &mut self,
        xy: Point,
        size: Point,
        look: &StyleAttr,
        properties: Option<String>,
    ) {
        self.grow(
            Point::new(xy.x - size.x / 2.0, xy.y - size.y / 2.0),
            Point::new(xy.x + size.x / 2.0, xy.y + size.y / 2.0),
        );
        let _ = writeln!(
            self.shapes,
            "<ellipse{} cx=\"{}\" cy=\"{}\" rx=\"{}\" ry=\"{}\" fill=\"{}\" stroke=\"{}\" stroke-width=\"{}\"/>",
            Self::props(&properties),
            n(xy.x),
            n(xy.y),
            n(size.x / 2.0),
            n(size.y / 2.0),
            look.fill_color.map(hex).unwrap_or_else(|| "none".into()),
            hex(look.line_color),
            look.line_width
        );
    }

    fn draw_text(&mut self, xy: Point, text: &str, look: &StyleAttr) {
        let edge_label = look.font_size == LABEL_LAYOUT_FONT;
        let lines: Vec<&str> = text.lines().collect();
        let sizes: Vec<f64> = (0..lines.len())
            .map(|i| {
                if i == 0 && !edge_label {
                    NODE_FONT
                } else {
                    SMALL_FONT
                }
            })
            .collect();
        let height: f64 = sizes.iter().map(|s| s * LINE_EM).sum();
        let mut top = xy.y - height / 2.0;
        let mut width: f64 = 0.0;
        let mut spans = String::new();
        for (i, (line, size)) in lines.iter().zip(&sizes).enumerate() {
            let baseline = top + size * 0.95;
            let (fill, weight) = match (edge_label, i) {
                (true, 0) => (hex(look.line_color), ""),
                (true, _) => (hex(look.line_color), " font-style=\"italic\""),
                (false, 0) => (INK.to_string(), " font-weight=\"bold\""),
                (false, _) => (GREY.to_string(), ""),
            };
            let _ = write!(
                spans,
                "<tspan x=\"{}\" y=\"{}\" font-size=\"{}\" fill=\"{fill}\"{weight}>{}</tspan>",
                n(xy.x),
                n(baseline),
                size,
                esc(line)
            );
            width = width.max(line.chars().count() as f64 * CHAR_EM * size);
            top += size * LINE_EM;
        }
        self.grow(
            Point::new(xy.x - width / 2.0, xy.y - height / 2.0),
            Point::new(xy.x + width / 2.0, xy.y + height / 2.0),
        );
        let halo = if edge_label {
            " stroke=\"#ffffff\" stroke-width=\"4\" stroke-linejoin=\"round\" paint-order=\"stroke\""
        } else {
            ""
        };
        let _ = writeln!(
            self.texts,
            "<text text-anchor=\"middle\"{halo}>{spans}</text>"
        );
    }

    fn draw_arrow(
        &mut self,
        path: &[(Point, Point)],
        dashed: bool,
        head: (bool, bool),
        look: &StyleAttr,
        properties: Option<String>,
        text: &str,
    ) {
        if path.len() < 2 {
            return;
        }
        for p in path {
            for q in [p.0, p.1] {
                self.grow(q, q);
            }
        }
        let mut d = format!(
            "M {} {} C {} {}, {} {}, {} {}",
            n(path[0].0.x),
            n(path[0].0.y),
            n(path[0].1.x),
            n(path[0].1.y),
            n(path[1].0.x),
            n(path[1].0.y),
            n(path[1].1.x),
            n(path[1].1.y)
        );
        for p in &path[2..] {
            let _ = write!(d, " S {} {}, {} {}", n(p.0.x), n(p.0.y), n(p.1.x), n(p.1.y));
        }
        let stroke = hex(look.line_color);
        let id = stroke.trim_start_matches('#').to_string();
        let mut ends = String::new();
        if head.0 || head.1 {
            self.markers.insert(id.clone());
        }
        if head.0 {
            let _ = write!(ends, " marker-start=\"url(#tail-{id})\"");
        }
        if head.1 {
            let _ = write!(ends, " marker-end=\"url(#head-{id})\"");
        }
        let dash = if dashed {
            " stroke-dasharray=\"7,5\""
        } else {
            ""
        };
        let _ = writeln!(
            self.arrows,
            "<path{} d=\"{d}\" fill=\"none\" stroke=\"{stroke}\" stroke-width=\"{}\"{dash}{ends}/>",
            Self::props(&properties),
            look.line_width
        );
        if !text.is_empty() {
            // Labels normally travel on connector nodes; draw one given here at the middle.
            let mid = path[path.len() / 2].1;
            let mut look = look.clone();
            look.font_size = LABEL_LAYOUT_FONT;
            self.draw_text(mid, text, &look);
        }
    }

    fn create_clip(&mut self, xy: Point, size: Point, rounded_px: usize) -> ClipHandle {
        let handle = self.clips.len();
        self.clips.push(format!(
            "<clipPath id=\"clip{handle}\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"{rounded_px}\"/></clipPath>",
            n(xy.x),
            n(xy.y),
            n(size.x),
            n(size.y)
        ));
        handle
    }
}
