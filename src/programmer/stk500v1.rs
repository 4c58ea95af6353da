//! STK500v1 driver as ArduinoISP speaks it (`avrisp`, `arduino_as_isp`, `stk500v1`, `arduino`).
