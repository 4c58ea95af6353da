//! The window for the software renderer: winit events go to egui through egui-winit (as in
//! eframe), each frame is painted by [`Painter`] into a softbuffer surface, and the loop
//! sleeps until input arrives or egui asks for a repaint.

use std::num::NonZeroU32;
use std::rc::Rc;
use std::time::{Duration, Instant};

use eframe::egui::{self, ViewportBuilder, ViewportId, ViewportInfo};
use egui_winit::accesskit_winit;
use egui_winit::winit::application::ApplicationHandler;
use egui_winit::winit::event::{StartCause, WindowEvent};
use egui_winit::winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop, EventLoopProxy};
use egui_winit::winit::window::{Window, WindowId};

use super::raster::{Painter, Target};
use crate::gui::app::{App, FONT_ATLAS_MAX_SIDE};

/// What wakes the loop besides window input.
enum Wake {
    /// egui wants a frame at this time (from the app's worker threads, or an animation).
    Repaint(Instant),
    /// A screen reader asked for the accessibility tree or an action.
    AccessKit(accesskit_winit::Event),
}

impl From<accesskit_winit::Event> for Wake {
    fn from(event: accesskit_winit::Event) -> Wake {
        Wake::AccessKit(event)
    }
}

/// Opens the window and runs until it is closed.
pub fn run(app: App, viewport: ViewportBuilder) -> Result<(), String> {
    let event_loop = EventLoop::<Wake>::with_user_event()
        .build()
        .map_err(|e| format!("cannot reach the display: {e}"))?;
    let ctx = egui::Context::default();
    let proxy = event_loop.create_proxy();
    let wake = proxy.clone();
    ctx.set_request_repaint_callback(move |info| {
        // `None`: egui wants no frame ("never" is Duration::MAX). A failed send means the
        // loop has ended, when no frame is wanted either.
        if let Some(when) = Instant::now().checked_add(info.delay) {
            let _ = wake.send_event(Wake::Repaint(when));
        }
    });
    app.apply_saved_theme(&ctx);
    let mut handler = SoftwareWindow {
        app,
        ctx,
        // Shown after the first frame is painted: no blank window, and AccessKit needs the
        // window hidden while it attaches.
        viewport: viewport.with_visible(false),
        proxy,
        open: None,
        painter: Painter::default(),
        repaint_at: None,
        pacing: Pacing {
            earliest_next: Instant::now(),
        },
        failure: None,
    };
    event_loop
        .run_app(&mut handler)
        .map_err(|e| format!("the window's event loop stopped: {e}"))?;
    match handler.failure {
        Some(failure) => Err(failure),
        None => Ok(()),
    }
}

struct SoftwareWindow {
    app: App,
    ctx: egui::Context,
    viewport: ViewportBuilder,
    proxy: EventLoopProxy<Wake>,
    open: Option<OpenWindow>,
    painter: Painter,
    /// The earliest frame egui has asked for, if later than now.
    repaint_at: Option<Instant>,
    pacing: Pacing,
    failure: Option<String>,
}

/// The window and everything tied to it, made once the event loop is running.
struct OpenWindow {
    window: Rc<Window>,
    surface: softbuffer::Surface<Rc<Window>, Rc<Window>>,
    input: egui_winit::State,
    info: ViewportInfo,
    /// Made visible after its first frame.
    shown: bool,
    /// Covered by other windows (as the platform reports it).
    occluded: bool,
}

impl SoftwareWindow {
    fn open(&mut self, event_loop: &ActiveEventLoop) -> Result<OpenWindow, String> {
        let window = egui_winit::create_window(&self.ctx, event_loop, &self.viewport)
            .map_err(|e| format!("cannot create the window: {e}"))?;
        let window = Rc::new(window);
        let context = softbuffer::Context::new(window.clone())
            .map_err(|e| format!("cannot draw to the display: {e}"))?;
        let surface = softbuffer::Surface::new(&context, window.clone())
            .map_err(|e| format!("cannot draw to the window: {e}"))?;
        let mut input = egui_winit::State::new(
            self.ctx.clone(),
            ViewportId::ROOT,
            event_loop,
            Some(window.scale_factor() as f32),
            window.theme(),
            Some(FONT_ATLAS_MAX_SIDE),
        );
        input.init_accesskit(event_loop, &window, self.proxy.clone());
        let mut info = ViewportInfo::default();
        egui_winit::update_viewport_info(&mut info, &self.ctx, &window, true);
        Ok(OpenWindow {
            window,
            surface,
            input,
            info,
            shown: false,
            occluded: false,
        })
    }

    /// Runs the app for one frame and puts it on screen (unless nobody can see it).
    fn paint(&mut self, event_loop: &ActiveEventLoop) -> Result<(), String> {
        let Some(open) = &mut self.open else {
            return Ok(());
        };
        let started = Instant::now();
        let window = open.window.clone();
        egui_winit::update_viewport_info(&mut open.info, &self.ctx, &window, false);
        let mut raw_input = open.input.take_egui_input(&window);
        raw_input
            .viewports
            .insert(ViewportId::ROOT, open.info.clone());
        open.info.events.clear();
        let app = &mut self.app;
        let mut output = self.ctx.run_ui(raw_input, |ui| app.window_ui(ui));
        open.input.handle_platform_output_with_event_loop(
            &window,
            event_loop,
            output.platform_output,
        );

        // Textures first, even for a frame not drawn: egui sends each change once.
        self.painter.set_textures(&mut output.textures_delta);
        let hidden = open.occluded || window.is_minimized() == Some(true);
        let shown = if hidden {
            Ok(())
        } else {
            let primitives = self.ctx.tessellate(output.shapes, output.pixels_per_point);
            let background = self.ctx.global_style().visuals.panel_fill;
            present(
                open,
                &self.painter,
                &primitives,
                output.pixels_per_point,
                background,
            )
        };
        self.painter.free_textures(&mut output.textures_delta);
        shown?;
        if !open.shown {
            window.set_visible(true);
            open.shown = true;
        }

        let mut close = false;
        if let Some(viewport) = output.viewport_output.get(&ViewportId::ROOT) {
            let mut actions = Vec::new();
            egui_winit::process_viewport_commands(
                &self.ctx,
                &mut open.info,
                viewport.commands.iter().cloned(),
                &window,
                &mut actions,
            );
            close = open.info.events.contains(&egui::ViewportEvent::Close);
            self.pacing.painted(started, hidden);
            if let Some(when) = Instant::now().checked_add(viewport.repaint_delay) {
                self.schedule(when);
            }
        }
        if close {
            event_loop.exit();
        }
        Ok(())
    }

    /// Asks for a frame at `when`, or as soon after as the frame pacing allows.
    fn schedule(&mut self, when: Instant) {
        let when = when.max(self.pacing.earliest_next);
        if when <= Instant::now() {
            if let Some(open) = &self.open {
                open.window.request_redraw();
            }
        } else if self.repaint_at.is_none_or(|at| when < at) {
            self.repaint_at = Some(when);
        }
    }

    fn fail(&mut self, event_loop: &ActiveEventLoop, failure: String) {
        self.failure = Some(failure);
        event_loop.exit();
    }
}

/// Paints the tessellated frame into the window's buffer and shows it.
fn present(
    open: &mut OpenWindow,
    painter: &Painter,
    primitives: &[egui::ClippedPrimitive],
    pixels_per_point: f32,
    background: egui::Color32,
) -> Result<(), String> {
    let size = open.window.inner_size();
    let (Some(width), Some(height)) = (NonZeroU32::new(size.width), NonZeroU32::new(size.height))
    else {
        return Ok(());
    };
    open.surface
        .resize(width, height)
        .map_err(|e| format!("cannot resize the window's buffer: {e}"))?;
    let mut buffer = open
        .surface
        .buffer_mut()
        .map_err(|e| format!("cannot draw to the window: {e}"))?;
    let mut target = Target {
        pixels: &mut buffer,
        width: size.width as usize,
        height: size.height as usize,
    };
    painter.paint(&mut target, primitives, pixels_per_point, background);
    // Lets Wayland pace the next frame.
    open.window.pre_present_notify();
    buffer
        .present()
        .map_err(|e| format!("cannot show the frame: {e}"))
}

/// Keeps the CPU painter from taking a whole core while something animates (a spinner asks
/// for every frame, and X11 has no vsync to slow it): frames at most every [`MIN_INTERVAL`] or
/// twice the last frame's cost, whichever is longer, and ten a second while nobody sees them.
struct Pacing {
    earliest_next: Instant,
}

/// About 60 frames a second.
const MIN_INTERVAL: Duration = Duration::from_millis(16);
/// The pace while minimised or covered: the app's logic (job events) still runs.
const HIDDEN_INTERVAL: Duration = Duration::from_millis(100);

impl Pacing {
    fn painted(&mut self, started: Instant, hidden: bool) {
        let interval = if hidden {
            HIDDEN_INTERVAL
        } else {
            MIN_INTERVAL.max(started.elapsed() * 2)
        };
        self.earliest_next = started + interval;
    }
}

impl ApplicationHandler<Wake> for SoftwareWindow {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.open.is_some() {
            return;
        }
        match self.open(event_loop) {
            Ok(open) => self.open = Some(open),
            Err(failure) => return self.fail(event_loop, failure),
        }
        // Paint the first frame now: Windows sends no redraw request to a hidden window, and
        // the window is shown after its first frame.
        if let Err(failure) = self.paint(event_loop) {
            self.fail(event_loop, failure);
        }
    }

    fn exiting(&mut self, _: &ActiveEventLoop) {
        // Every way out passes here: the close button, File → Quit, Cmd-Q, a failure.
        self.app.save_settings();
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _: WindowId, event: WindowEvent) {
        let Some(open) = &mut self.open else {
            return;
        };
        match event {
            WindowEvent::RedrawRequested => {
                if let Err(failure) = self.paint(event_loop) {
                    self.fail(event_loop, failure);
                }
            }
            WindowEvent::CloseRequested | WindowEvent::Destroyed => event_loop.exit(),
            event => {
                if let WindowEvent::Occluded(occluded) = event {
                    open.occluded = occluded;
                }
                if open.input.on_window_event(&open.window, &event).repaint {
                    self.schedule(Instant::now());
                }
            }
        }
    }

    fn user_event(&mut self, _: &ActiveEventLoop, wake: Wake) {
        match wake {
            Wake::Repaint(when) => self.schedule(when),
            Wake::AccessKit(event) => {
                let Some(open) = &mut self.open else {
                    return;
                };
                match event.window_event {
                    accesskit_winit::WindowEvent::InitialTreeRequested => {
                        self.ctx.enable_accesskit();
                        open.window.request_redraw();
                    }
                    accesskit_winit::WindowEvent::ActionRequested(request) => {
                        open.input.on_accesskit_action_request(request);
                        self.schedule(Instant::now());
                    }
                    accesskit_winit::WindowEvent::AccessibilityDeactivated => {
                        self.ctx.disable_accesskit();
                    }
                }
            }
        }
    }

    fn new_events(&mut self, _: &ActiveEventLoop, cause: StartCause) {
        if let StartCause::ResumeTimeReached { .. } = cause {
            self.repaint_at = None;
            if let Some(open) = &self.open {
                open.window.request_redraw();
            }
        }
    }

    fn about_to_wait(&mut self, event_loop: &ActiveEventLoop) {
        event_loop.set_control_flow(match self.repaint_at {
            Some(at) => ControlFlow::WaitUntil(at),
            None => ControlFlow::Wait,
        });
    }
}
