//! The wiring diagram, drawn with the egui painter: the programmer's pins (labels from the
//! guide) wired to the target MCU's ISP signals (pin names and numbers from the part's
//! package), the ISP header when the programmer has one, and the guide's warnings.

use eframe::egui::{
    self, Align2, Color32, FontId, Pos2, Rect, RichText, Sense, Stroke, StrokeKind, Vec2, pos2,
    vec2,
};

use crate::catalog::{Header, Programmer, ProgrammerCatalog};
use crate::part::{IspSignal, Part};

const ROW_HEIGHT: f32 = 26.0;
const BOX_WIDTH: f32 = 190.0;
const TITLE_HEIGHT: f32 = 24.0;

/// Draws the whole wiring panel: diagram, header drawing, warnings and notes.
pub fn wiring_panel(ui: &mut egui::Ui, programmer: &Programmer, part: &Part) {
    for warning in &programmer.warnings {
        warning_box(ui, warning);
    }
    diagram(ui, programmer, part);
    if let Ok(catalog) = ProgrammerCatalog::builtin() {
        for id in &programmer.headers {
            if let Some(header) = catalog.header(id) {
                ui.add_space(6.0);
                header_drawing(ui, header);
            }
        }
    }
    for row in programmer.wiring.iter().filter(|r| r.note.is_some()) {
        if let Some(note) = &row.note {
            ui.small(format!("{}: {note}", row.programmer_pin));
        }
    }
}

/// A warning the user must not miss.
fn warning_box(ui: &mut egui::Ui, text: &str) {
    let dark = ui.visuals().dark_mode;
    let (fill, fg) = if dark {
        (
            Color32::from_rgb(0x4A, 0x1C, 0x1C),
            Color32::from_rgb(0xFF, 0xC9, 0xC0),
        )
    } else {
        (
            Color32::from_rgb(0xFF, 0xE8, 0xE5),
            Color32::from_rgb(0x8A, 0x14, 0x0C),
        )
    };
    egui::Frame::new()
        .fill(fill)
        .inner_margin(8.0)
        .corner_radius(4.0)
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.label(RichText::new(format!("WARNING: {text}")).color(fg).strong());
        });
    ui.add_space(4.0);
}

/// The colour of each signal's wire (the usual breadboard convention for power).
pub fn signal_colour(signal: IspSignal, dark: bool) -> Color32 {
    let c = match signal {
        IspSignal::Vcc => (0xE5, 0x39, 0x35),
        IspSignal::Gnd => {
            if dark {
                (0xB0, 0xB0, 0xB0)
            } else {
                (0x30, 0x30, 0x30)
            }
        }
        IspSignal::Reset => (0xF2, 0x9D, 0x12),
        IspSignal::Sck => (0x2E, 0x9C, 0xE6),
        IspSignal::Mosi => (0x43, 0xA0, 0x47),
        IspSignal::Miso => (0xAB, 0x47, 0xBC),
    };
    Color32::from_rgb(c.0, c.1, c.2)
}

fn diagram(ui: &mut egui::Ui, programmer: &Programmer, part: &Part) {
    let dark = ui.visuals().dark_mode;
    let text_colour = ui.visuals().text_color();
    let frame_stroke = Stroke::new(1.5, ui.visuals().widgets.noninteractive.fg_stroke.color);
    let package = part.main_package();
    let font = FontId::monospace(12.5);
    let title_font = FontId::proportional(14.0);
    let rows: Vec<(IspSignal, String, String)> = IspSignal::ALL
        .into_iter()
        .map(|signal| {
            let programmer_label = match programmer.wire_for(signal) {
                Some(row) => match &row.device_pin {
                    Some(device) => format!("{} ({device})", row.programmer_pin),
                    None => row.programmer_pin.clone(),
                },
                None => "—".into(),
            };
            (signal, programmer_label, target_label(part, signal))
        })
        .collect();
    let target_title = format!("{} ({})", part.name, package.name);
    // Size each box to its longest text so nothing spills over its frame.
    let painter = ui.painter();
    let width_of = |text: &str, font: &FontId| {
        painter
            .layout_no_wrap(text.to_string(), font.clone(), text_colour)
            .size()
            .x
    };
    let left_width = rows
        .iter()
        .map(|r| width_of(&r.1, &font))
        .chain([width_of(&programmer.name, &title_font)])
        .fold(BOX_WIDTH * 0.6, f32::max)
        + 24.0;
    let right_width = rows
        .iter()
        .map(|r| width_of(&r.2, &font))
        .chain([width_of(&target_title, &title_font)])
        .fold(BOX_WIDTH * 0.6, f32::max)
        + 24.0;
    let height = TITLE_HEIGHT + rows.len() as f32 * ROW_HEIGHT + 12.0;
    let width = ui.available_width().max(left_width + right_width + 90.0);
    let (response, painter) = ui.allocate_painter(vec2(width, height), Sense::hover());
    // The drawing as words, for screen readers (and tests).
    let description = rows
        .iter()
        .map(|(signal, from, to)| format!("{from} → {} → {to}", signal.label()))
        .collect::<Vec<_>>()
        .join("; ");
    response.widget_info(|| {
        egui::WidgetInfo::labeled(egui::Role::Image, true, format!("Wiring: {description}"))
    });
    let area = response.rect;
    let left = Rect::from_min_size(area.min, vec2(left_width, height));
    let right = Rect::from_min_size(
        pos2(area.max.x - right_width, area.min.y),
        vec2(right_width, height),
    );
    for (rect, title) in [
        (left, programmer.name.as_str()),
        (right, target_title.as_str()),
    ] {
        painter.rect_stroke(rect, 6.0, frame_stroke, StrokeKind::Inside);
        painter.text(
            pos2(rect.center().x, rect.min.y + TITLE_HEIGHT / 2.0 + 2.0),
            Align2::CENTER_CENTER,
            title,
            title_font.clone(),
            text_colour,
        );
    }
    for (i, (signal, programmer_label, target)) in rows.into_iter().enumerate() {
        let y = area.min.y + TITLE_HEIGHT + (i as f32 + 0.5) * ROW_HEIGHT + 6.0;
        let colour = signal_colour(signal, dark);
        let from = pos2(left.max.x, y);
        let to = pos2(right.min.x, y);
        painter.line_segment([from, to], Stroke::new(3.0, colour));
        for p in [from, to] {
            painter.circle_filled(p, 4.5, colour);
        }
        painter.text(
            pos2(left.max.x - 10.0, y),
            Align2::RIGHT_CENTER,
            programmer_label,
            font.clone(),
            text_colour,
        );
        painter.text(
            pos2(right.min.x + 10.0, y),
            Align2::LEFT_CENTER,
            target,
            font.clone(),
            text_colour,
        );
        painter.text(
            Pos2::new((from.x + to.x) / 2.0, y - 5.0),
            Align2::CENTER_BOTTOM,
            signal.label(),
            FontId::proportional(11.5),
            colour,
        );
    }
}

/// `RESET · pin 13`, `PB1 (SCK) · pin 9`, `VCC · pins 2, 34`.
pub fn target_label(part: &Part, signal: IspSignal) -> String {
    let Some(pin) = part
        .main_package()
        .isp_pins
        .iter()
        .find(|p| p.signal == signal)
    else {
        return "?".into();
    };
    let name = if pin.port.eq_ignore_ascii_case(signal.label()) {
        pin.port.clone()
    } else {
        format!("{} ({})", pin.port, signal.label())
    };
    let numbers = pin
        .pins
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let word = if pin.pins.len() == 1 { "pin" } else { "pins" };
    format!("{name} · {word} {numbers}")
}

/// The connector as seen from above: two rows, pin 1 marked.
fn header_drawing(ui: &mut egui::Ui, header: &Header) {
    let dark = ui.visuals().dark_mode;
    let text_colour = ui.visuals().text_color();
    ui.label(RichText::new(&header.name).strong());
    let columns = header.pins.len().div_ceil(2);
    let cell = vec2(72.0, 30.0);
    let size = vec2(cell.x * columns as f32 + 8.0, cell.y * 2.0 + 8.0);
    let (response, painter) = ui.allocate_painter(size, Sense::hover());
    let origin = response.rect.min + Vec2::splat(4.0);
    painter.rect_stroke(
        response.rect,
        4.0,
        Stroke::new(1.5, ui.visuals().widgets.noninteractive.fg_stroke.color),
        StrokeKind::Inside,
    );
    for (index, pin) in header.pins.iter().enumerate() {
        // Numbered headers: odd pins on the top row, pin n in column (n-1)/2; unnumbered ones
        // are listed in that same order.
        let slot = pin.pin.map_or(index, |n| usize::from(n).saturating_sub(1));
        let (col, row) = (slot / 2, slot % 2);
        let centre = origin + vec2((col as f32 + 0.5) * cell.x, (row as f32 + 0.5) * cell.y);
        let colour = pin
            .signal
            .map_or(ui.visuals().weak_text_color(), |s| signal_colour(s, dark));
        painter.circle_filled(centre - vec2(cell.x / 2.0 - 10.0, 0.0), 5.0, colour);
        let label = match (pin.pin, pin.signal) {
            (Some(n), _) => format!("{n} {}", pin.label),
            (None, _) => pin.label.clone(),
        };
        painter.text(
            centre - vec2(cell.x / 2.0 - 19.0, 0.0),
            Align2::LEFT_CENTER,
            label,
            FontId::monospace(11.0),
            if pin.signal.is_some() {
                text_colour
            } else {
                ui.visuals().weak_text_color()
            },
        );
    }
}
