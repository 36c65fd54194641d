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
; In a console that stays open, so the checks can be read.
Name: "{autoprograms}\Bulwark self-test"; Filename: "{cmd}"; Parameters: "/k ""{app}\bulwark.exe"" --self-test"; Comment: "Check this installation"
Name: "{autodesktop}\Bulwark"; Filename: "{app}\bulwark-desk.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\bulwark-desk.exe"; Description: "Start Bulwark"; Flags: nowait postinstall skipifsilent

[Code]
// The user's PATH gets {app} on install (when the task is chosen) and loses it on uninstall. Entries are
// compared whole, between semicolons: a folder such as ...\Bulwark\tools is never mistaken for {app}.
const
  EnvironmentKey = 'Environment';

function WithoutEntry(Path, Dir: string): string;
var
  Rest, Entry: string;
  At: Integer;
begin
  Result := '';
  Rest := Path + ';';
  while Rest <> '' do
  begin
    At := Pos(';', Rest);
    Entry := Copy(Rest, 1, At - 1);
    Delete(Rest, 1, At);
    if (Entry <> '') and (CompareText(RemoveBackslashUnlessRoot(Entry), RemoveBackslashUnlessRoot(Dir)) <> 0) then
    begin
      if Result <> '' then
        Result := Result + ';';
      Result := Result + Entry;
    end;
  end;
end;

procedure AddToPath(Dir: string);
var
  Path: string;
begin
  if not RegQueryStringValue(HKEY_CURRENT_USER, EnvironmentKey, 'Path', Path) then
    Path := '';
  if Pos(';' + Uppercase(RemoveBackslashUnlessRoot(Dir)) + ';', ';' + Uppercase(Path) + ';') > 0 then
    exit; // already there
  if Path = '' then
    Path := Dir
  else
    Path := Path + ';' + Dir;
  RegWriteExpandStringValue(HKEY_CURRENT_USER, EnvironmentKey, 'Path', Path);
end;

procedure RemoveFromPath(Dir: string);
var
  Path: string;
begin
  if RegQueryStringValue(HKEY_CURRENT_USER, EnvironmentKey, 'Path', Path) then
    RegWriteExpandStringValue(HKEY_CURRENT_USER, EnvironmentKey, 'Path', WithoutEntry(Path, Dir));
end;

procedure CurStepChanged(CurStep: TSetupStep);
begin
  if (CurStep = ssPostInstall) and WizardIsTaskSelected('addtopath') then
    AddToPath(ExpandConstant('{app}'));
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  // Only PATH: the data folder and the Credential Manager entries are the user's.
  if CurUninstallStep = usPostUninstall then
    RemoveFromPath(ExpandConstant('{app}'));
end;
