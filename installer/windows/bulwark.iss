; Inno Setup 6 script: Bulwark for Windows, installed per user (no administrator rights asked).
;
;   iscc /DAppVersion=0.1.0 /DDistDir=build\installer\dist\bulwark /DIconFile=build\installer\icons\bulwark.ico ^
;        /Obuild\installer installer\windows\bulwark.iss
;
; Built and tested by .github/workflows/windows.yml (it cannot be built on the Linux machines the project is
; developed on). The application goes to %LOCALAPPDATA%\Programs\Bulwark. The trader's data folder
; (%LOCALAPPDATA%\Bulwark) and the Windows Credential Manager entries are the user's: an upgrade or an
; uninstall never touches them.

#ifndef AppVersion
  #error Pass /DAppVersion=X.Y.Z (app.__version__)
#endif
#ifndef DistDir
  #error Pass /DDistDir=<the PyInstaller one-folder application>
#endif
#ifndef IconFile
  #define IconFile "..\..\build\installer\icons\bulwark.ico"
#endif

[Setup]
; The AppId ties every version together: a newer installer upgrades in place. Never change it.
AppId={{6C1E0F52-8B1D-4E5B-9A0E-6B7C2D4F9A31}
AppName=Bulwark
AppVersion={#AppVersion}
AppVerName=Bulwark {#AppVersion}
AppPublisher=Bulwark developers
DefaultDirName={autopf}\Bulwark
DefaultGroupName=Bulwark
DisableProgramGroupPage=yes
; Per user: {autopf} is %LOCALAPPDATA%\Programs, the Start menu and registry entries are the user's own.
PrivilegesRequired=lowest
OutputBaseFilename=Bulwark-{#AppVersion}-setup
SetupIconFile={#IconFile}
UninstallDisplayIcon={app}\bulwark-desk.exe
UninstallDisplayName=Bulwark {#AppVersion}
Compression=lzma2/max
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
WizardStyle=modern
; A running desk holds its files: ask to close it (its window asks what to do with working orders).
CloseApplications=yes
RestartApplications=no
ChangesEnvironment=yes

[Tasks]
Name: "desktopicon"; Description: "Create a desktop shortcut"; Flags: unchecked
Name: "addtopath"; Description: "Add the bulwark command (panic, audit verify, ...) to my PATH"

[InstallDelete]
; An upgrade replaces the whole application: no library of the previous version may linger beside the new ones.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "{#DistDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\Bulwark"; Filename: "{app}\bulwark-desk.exe"; Comment: "Trading control desk"
Name: "{autoprograms}\Bulwark self-test"; Filename: "{app}\bulwark.exe"; Parameters: "--self-test"; Comment: "Check this installation"
Name: "{autodesktop}\Bulwark"; Filename: "{app}\bulwark-desk.exe"; Tasks: desktopicon

[Registry]
Root: HKCU; Subkey: "Environment"; ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}"; \
    Tasks: addtopath; Check: NeedsAddPath(ExpandConstant('{app}'))

[Run]
Filename: "{app}\bulwark-desk.exe"; Description: "Start Bulwark"; Flags: nowait postinstall skipifsilent

[Code]
function NeedsAddPath(Dir: string): Boolean;
var
  Path: string;
begin
  if not RegQueryStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Path) then
  begin
    Result := True;
    exit;
  end;
  Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Path) + ';') = 0;
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  Path, Dir: string;
  At: Integer;
begin
  if CurUninstallStep <> usPostUninstall then
    exit;
  { Take {app} back out of the user's PATH; the data folder stays where it is. }
  Dir := ExpandConstant('{app}');
  if RegQueryStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Path) then
  begin
    At := Pos(';' + Uppercase(Dir), Uppercase(Path));
    if At > 0 then
    begin
      Delete(Path, At, Length(Dir) + 1);
      RegWriteExpandStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Path);
    end;
  end;
end;
