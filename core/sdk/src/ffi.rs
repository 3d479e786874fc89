//! FFI-safe value types: the only data shapes that cross the plugin boundary.
//!
//! Rust's `String`, `Vec`, `Option` and `Result` have no stable layout, and memory must be freed by the
//! allocator that made it (a plugin may use another global allocator than the server). So borrowed data
//! crosses as [`FfiStr`]/[`FfiSlice`] (valid for the duration of the call), and owned data as
//! [`FfiString`]/[`FfiVec`], which carry the free function of the side that allocated them.
//!
//! [`FfiOption`] and [`FfiResult`] are `#[repr(C, u8)]` enums like async-ffi's `FfiPoll`: their
//! discriminants are fixed by this ABI version and only ever written by this crate's code, so an unknown
//! discriminant cannot arrive. Domain enums (error kinds, auth outcomes) cross as `u32` codes instead.

use std::marker::PhantomData;

/// A borrowed UTF-8 string: pointer and length, valid for lifetime `'a`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FfiStr<'a> {
    ptr: *const u8,
    len: usize,
    _marker: PhantomData<&'a str>,
}

// SAFETY: an `FfiStr` is a shared borrow of immutable UTF-8 data, exactly like `&str`, which is Send + Sync.
unsafe impl Send for FfiStr<'_> {}
// SAFETY: as above.
unsafe impl Sync for FfiStr<'_> {}

impl<'a> FfiStr<'a> {
    /// Borrows `s` for the boundary.
    pub const fn new(s: &'a str) -> Self {
        FfiStr {
            ptr: s.as_ptr(),
            len: s.len(),
            _marker: PhantomData,
        }
    }

    /// The string. Both sides only ever build an `FfiStr` with [`FfiStr::new`], so it is valid UTF-8
    /// borrowed for `'a`.
    pub fn as_str(&self) -> &'a str {
        // SAFETY: every FfiStr is made by `FfiStr::new` from a `&'a str` (the fields are private and the
        // only other producer is this crate's code on the other side of the boundary, which uses the same
        // constructor), so ptr/len describe live UTF-8 data for `'a`.
        unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(self.ptr, self.len)) }
    }
}

impl std::fmt::Debug for FfiStr<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A borrowed slice of FFI-safe values, valid for lifetime `'a`.
#[repr(C)]
pub struct FfiSlice<'a, T> {
    ptr: *const T,
    len: usize,
    _marker: PhantomData<&'a [T]>,
}

impl<T> Clone for FfiSlice<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for FfiSlice<'_, T> {}

// SAFETY: a shared borrow of `[T]`; Send/Sync exactly when `&[T]` is.
unsafe impl<T: Sync> Send for FfiSlice<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for FfiSlice<'_, T> {}

impl<'a, T> FfiSlice<'a, T> {
    /// Borrows `s` for the boundary.
    pub const fn new(s: &'a [T]) -> Self {
        FfiSlice {
            ptr: s.as_ptr(),
            len: s.len(),
            _marker: PhantomData,
        }
    }

    /// The slice.
    pub fn as_slice(&self) -> &'a [T] {
        // SAFETY: made only by `FfiSlice::new` from a `&'a [T]`, so ptr/len describe a live slice for 'a
        // (an empty slice has a dangling but aligned, non-null pointer, which from_raw_parts accepts).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for FfiSlice<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// An owned vector that is freed by the allocator of the side that created it.
#[repr(C)]
pub struct FfiVec<T> {
    ptr: *mut T,
    len: usize,
    cap: usize,
    free: unsafe extern "C" fn(*mut T, usize, usize),
}

// SAFETY: owns its elements like `Vec<T>`; Send/Sync exactly when `Vec<T>` is.
unsafe impl<T: Send> Send for FfiVec<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for FfiVec<T> {}

unsafe extern "C" fn free_vec<T>(ptr: *mut T, len: usize, cap: usize) {
    // Runs in the crate that created the vector (the fn pointer was taken there), so this is the
    // allocator that allocated it. A panic in an element's Drop must not unwind across the boundary.
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: ptr/len/cap come from `Vec::into_raw_parts`-equivalent decomposition in `From<Vec<T>>`
        // and are released exactly once (FfiVec::drop or into_vec, which forgets self).
        drop(unsafe { Vec::from_raw_parts(ptr, len, cap) });
    }));
    if dropped.is_err() {
        log::error!("a value panicked while being dropped at the plugin boundary");
    }
}

impl<T> From<Vec<T>> for FfiVec<T> {
    fn from(v: Vec<T>) -> Self {
        let mut v = std::mem::ManuallyDrop::new(v);
        FfiVec {
            ptr: v.as_mut_ptr(),
            len: v.len(),
            cap: v.capacity(),
            free: free_vec::<T>,
        }
    }
}

impl<T> FfiVec<T> {
    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: ptr/len describe the live elements of the vector this FfiVec owns.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T> Drop for FfiVec<T> {
    fn drop(&mut self) {
        // SAFETY: `free` belongs to the creating side and matches ptr/len/cap; drop runs once.
        unsafe { (self.free)(self.ptr, self.len, self.cap) }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for FfiVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// An owned UTF-8 string that is freed by the allocator of the side that created it.
#[repr(C)]
#[derive(Debug)]
pub struct FfiString(FfiVec<u8>);

impl FfiString {
    /// The string.
    pub fn as_str(&self) -> &str {
        // SAFETY: an FfiString is only made from a `String` (see `From<String>`), so the bytes are UTF-8.
        unsafe { std::str::from_utf8_unchecked(self.0.as_slice()) }
    }
}

impl From<String> for FfiString {
    fn from(s: String) -> Self {
        FfiString(FfiVec::from(s.into_bytes()))
    }
}

impl From<&str> for FfiString {
    fn from(s: &str) -> Self {
        FfiString::from(s.to_owned())
    }
}

/// An FFI-safe `Option`.
#[repr(C, u8)]
#[derive(Debug)]
pub enum FfiOption<T> {
    /// No value.
    None,
    /// A value.
    Some(T),
}

impl<T> From<Option<T>> for FfiOption<T> {
    fn from(o: Option<T>) -> Self {
        match o {
            Some(v) => FfiOption::Some(v),
            None => FfiOption::None,
        }
    }
}

impl<T> FfiOption<T> {
    /// Converts to a Rust `Option`.
    pub fn into_option(self) -> Option<T> {
        match self {
            FfiOption::Some(v) => Some(v),
            FfiOption::None => None,
        }
    }

    /// Borrows the value, if any.
    pub fn as_ref(&self) -> Option<&T> {
        match self {
            FfiOption::Some(v) => Some(v),
            FfiOption::None => None,
        }
    }
}

/// An FFI-safe `Result` whose error is always an [`FfiError`].
#[repr(C, u8)]
#[derive(Debug)]
pub enum FfiResult<T> {
    /// Success.
    Ok(T),
    /// Failure.
    Err(FfiError),
}

/// An error as it crosses the boundary: a `u32` code (see [`crate::ErrorCode`]), a message, and for
/// configuration errors the 1-based line and column inside the plugin's settings text (0 = unknown).
#[repr(C)]
#[derive(Debug)]
pub struct FfiError {
    /// The error code.
    pub code: u32,
    /// Human-readable message.
    pub message: FfiString,
    /// 1-based line in the settings text, 0 if not applicable.
    pub line: u32,
    /// 1-based column in the settings text, 0 if not applicable.
    pub column: u32,
}
