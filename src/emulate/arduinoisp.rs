//! Emulated ArduinoISP firmware (STK500v1) on a Pro Micro, Teensy 2.0 or Uno-style host.
