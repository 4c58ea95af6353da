//! Software renderer frame cost: the app's window laid out by egui, tessellated, and painted
//! on the CPU, at the usual window sizes. Prints a markdown table (median of many frames).
//! Run: `cargo bench --bench gui_render`.

use std::time::{Duration, Instant};

use isp_toolbox::gui::software::offscreen::Offscreen;
use isp_toolbox::gui::{App, AppOptions, settings::Settings};

const FRAMES: usize = 60;

struct Timings {
    layout: Vec<Duration>,
    tessellate: Vec<Duration>,
    paint: Vec<Duration>,
}

fn median(samples: &mut [Duration]) -> f64 {
    samples.sort_unstable();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

fn measure(size: [usize; 2], pixels_per_point: f32, dark: bool) -> Timings {
    let settings = Settings {
        programmer: Some("promicro-isp".into()),
        port: Some("emulated".into()),
        mcu: Some("atmega32u4".into()),
        bootloader: Some("atmel-dfu-atmega32u4".into()),
        dark_mode: Some(dark),
        ..Settings::default()
    };
    let mut app = App::new(AppOptions::for_tests(settings));
    let mut frame = Offscreen::new(size, pixels_per_point);
    app.apply_saved_theme(&frame.ctx);
    let mut timings = Timings {
        layout: Vec::new(),
        tessellate: Vec::new(),
        paint: Vec::new(),
    };
    for pass in 0..FRAMES + 5 {
        let start = Instant::now();
        let mut output = frame.run(|ui| app.window_ui(ui));
        let laid_out = Instant::now();
        let primitives = frame.tessellate(&mut output);
        let tessellated = Instant::now();
        frame.paint(&primitives, &mut output.textures_delta);
        let painted = Instant::now();
        // The first frames build the font atlas; measure the steady state.
        if pass >= 5 {
            timings.layout.push(laid_out - start);
            timings.tessellate.push(tessellated - laid_out);
            timings.paint.push(painted - tessellated);
        }
    }
    timings
}

fn main() {
    println!("| window | scale | theme | egui pass ms | tessellate ms | paint ms | frame ms |");
    println!("| --- | ---: | --- | ---: | ---: | ---: | ---: |");
    for (size, scale) in [([1180, 860], 1.0), ([1400, 950], 1.0), ([2360, 1720], 2.0)] {
        for dark in [true, false] {
            let mut t = measure(size, scale, dark);
            let (layout, tessellate, paint) = (
                median(&mut t.layout),
                median(&mut t.tessellate),
                median(&mut t.paint),
            );
            println!(
                "| {}×{} | {scale} | {} | {layout:.2} | {tessellate:.2} | {paint:.2} | {:.2} |",
                size[0],
                size[1],
                if dark { "dark" } else { "light" },
                layout + tessellate + paint
            );
        }
    }
}
